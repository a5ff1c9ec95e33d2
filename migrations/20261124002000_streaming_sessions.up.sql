-- Streaming sessions as two-phase holds (TigerBeetle's pending transfers): open (hold), settle (finalize or
-- abort: capture + release, overage charge, including a late settle after expiry) and expire (sweeper).
-- Each is one function so that each API call is one statement and one round trip. Lock order everywhere:
-- the owner's user_accounts row, then the session row, then lots in consumption order.

-- Cost of the estimated input tokens at the pinned price, computed by the service at initialize (prices are
-- computed in one place, src/services/price.service.ts). The default expiry policy charges it.
ALTER TABLE streaming_sessions ADD COLUMN estimated_input_credits bigint CHECK (estimated_input_credits >= 0);

-- GET /api/streaming-sessions/active/all pages through active sessions in creation order.
CREATE INDEX streaming_sessions_active_created ON streaming_sessions (created_at, id) WHERE status = 'active';

-- What every session function returns. outcome says what happened; the service maps it to a response or
-- an error. The session fields are NULL when the outcome must not reveal the session (not_found, conflict).
CREATE TYPE acct_session_result AS (
  outcome            text,
  available_credits  bigint,
  id                 text,
  user_id            text,
  model_id           text,
  price_version      integer,
  status             text,
  estimated_credits  bigint,
  allocated_credits  bigint,
  used_credits       bigint,
  refunded_credits   bigint,
  unpaid_credits     bigint,
  expires_at         timestamptz,
  created_at         timestamptz
);

CREATE FUNCTION acct_session_result_of(p_outcome text, p_available bigint, s streaming_sessions)
RETURNS acct_session_result LANGUAGE sql IMMUTABLE AS $$
  SELECT ROW(p_outcome, p_available, s.id, s.user_id, s.model_id, s.price_version, s.status, s.estimated_credits,
             s.allocated_credits, s.used_credits, s.refunded_credits, s.unpaid_credits, s.expires_at,
             s.created_at)::acct_session_result
$$;

-- Locks the user's row, creating it if the process-level mirror cache skipped a user that is not there.
CREATE FUNCTION acct_lock_user(p_user text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  PERFORM 1 FROM user_accounts WHERE id = p_user FOR UPDATE;
  IF NOT FOUND THEN
    INSERT INTO user_accounts (id) VALUES (p_user) ON CONFLICT (id) DO NOTHING;
    PERFORM 1 FROM user_accounts WHERE id = p_user FOR UPDATE;
  END IF;
END $$;

-- Opens a session and holds its estimate. Outcomes: created | replayed (same user, same request hash) |
-- reused (same user, other request) | conflict (the id belongs to another user) | insufficient (nothing
-- written; available_credits says what there is).
CREATE FUNCTION acct_session_open(
  p_session text, p_user text, p_model text, p_price_version integer,
  p_est_input bigint, p_est_output bigint, p_estimate bigint, p_est_input_credits bigint,
  p_request_hash text, p_ttl_seconds integer
) RETURNS acct_session_result LANGUAGE plpgsql AS $$
DECLARE
  s streaming_sessions%ROWTYPE;
  v_available bigint;
BEGIN
  PERFORM acct_lock_user(p_user);

  SELECT * INTO s FROM streaming_sessions WHERE id = p_session;
  IF NOT FOUND THEN
    v_available := acct_available(p_user);
    IF v_available < p_estimate THEN
      RETURN acct_session_result_of('insufficient', v_available, NULL::streaming_sessions);
    END IF;
    INSERT INTO streaming_sessions (id, user_id, model_id, price_version, status, estimated_input_tokens,
                                    estimated_output_tokens, estimated_credits, estimated_input_credits,
                                    allocated_credits, request_hash, expires_at)
    VALUES (p_session, p_user, p_model, p_price_version, 'active', p_est_input, p_est_output, p_estimate,
            p_est_input_credits, p_estimate, p_request_hash, now() + make_interval(secs => p_ttl_seconds))
    ON CONFLICT (id) DO NOTHING
    RETURNING * INTO s;
    IF FOUND THEN
      IF acct_draw(p_user, p_estimate, 'hold', p_session, NULL, p_user) <> p_estimate THEN
        RAISE EXCEPTION 'acct_session_open: hold of % for session % not covered', p_estimate, p_session;
      END IF;
      RETURN acct_session_result_of('created', v_available - p_estimate, s);
    END IF;
    -- Another user inserted the same id concurrently (we waited for it to commit).
    SELECT * INTO s FROM streaming_sessions WHERE id = p_session;
  END IF;

  IF s.user_id <> p_user THEN
    RETURN acct_session_result_of('conflict', NULL, NULL::streaming_sessions);
  ELSIF s.request_hash <> p_request_hash THEN
    RETURN acct_session_result_of('reused', NULL, NULL::streaming_sessions);
  END IF;
  RETURN acct_session_result_of('replayed', NULL, s);
END $$;

-- Resolves a hold: captures up to p_capture from its legs in consumption order (soonest-expiring lot first)
-- and releases the rest to the same lots. A share released into a lot that has expired since is written as
-- 'release' then 'expire' (remaining unchanged): expired credits are not revived. Returns what it captured.
CREATE FUNCTION acct_hold_resolve(p_session text, p_user text, p_capture bigint, p_usage_record bigint, p_actor text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  leg record;
  v_left bigint := p_capture;
  v_cap bigint;
  v_rel bigint;
BEGIN
  FOR leg IN
    SELECT h.allocation_id, h.held_credits, (a.expires_at IS NOT NULL AND a.expires_at <= now()) AS lot_expired
      FROM session_holds h JOIN credit_allocations a ON a.id = h.allocation_id
     WHERE h.session_id = p_session
     ORDER BY a.expires_at NULLS LAST, a.id
       FOR UPDATE OF a
  LOOP
    v_cap := least(leg.held_credits, v_left);
    v_rel := leg.held_credits - v_cap;
    v_left := v_left - v_cap;
    IF v_cap > 0 THEN
      INSERT INTO credit_transactions (user_id, type, amount, allocation_id, session_id, usage_record_id, actor_id)
      VALUES (p_user, 'capture', v_cap, leg.allocation_id, p_session, p_usage_record, p_actor);
    END IF;
    IF v_rel > 0 THEN
      INSERT INTO credit_transactions (user_id, type, amount, allocation_id, session_id, usage_record_id, actor_id)
      VALUES (p_user, 'release', v_rel, leg.allocation_id, p_session, p_usage_record, p_actor);
      IF leg.lot_expired THEN
        INSERT INTO credit_transactions (user_id, type, amount, allocation_id, session_id, usage_record_id, actor_id, note)
        VALUES (p_user, 'expire', v_rel, leg.allocation_id, p_session, p_usage_record, p_actor,
                'released into an expired allocation');
      ELSE
        UPDATE credit_allocations SET remaining_credits = remaining_credits + v_rel WHERE id = leg.allocation_id;
      END IF;
    END IF;
    UPDATE session_holds SET captured_credits = v_cap, released_credits = v_rel
     WHERE session_id = p_session AND allocation_id = leg.allocation_id;
  END LOOP;
  RETURN p_capture - v_left;
END $$;

-- Gives back up to p_amount of what a resolved hold captured, as 'adjust' rows to the lots it was captured
-- from, the last-captured lot first (a refund into a lot that has expired since is expired too). Used when
-- a late finalize finds the real cost below what expiry charged. Returns what it refunded.
CREATE FUNCTION acct_hold_refund(p_session text, p_user text, p_amount bigint, p_usage_record bigint, p_actor text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  leg record;
  v_left bigint := p_amount;
  v_back bigint;
BEGIN
  -- Lock in consumption order (the one lot order), then walk backwards.
  PERFORM 1 FROM credit_allocations
   WHERE id IN (SELECT allocation_id FROM session_holds WHERE session_id = p_session AND captured_credits > 0)
   ORDER BY expires_at NULLS LAST, id
     FOR UPDATE;
  FOR leg IN
    SELECT h.allocation_id, h.captured_credits, (a.expires_at IS NOT NULL AND a.expires_at <= now()) AS lot_expired
      FROM session_holds h JOIN credit_allocations a ON a.id = h.allocation_id
     WHERE h.session_id = p_session AND h.captured_credits > 0
     ORDER BY a.expires_at DESC NULLS FIRST, a.id DESC
  LOOP
    EXIT WHEN v_left = 0;
    v_back := least(leg.captured_credits, v_left);
    v_left := v_left - v_back;
    INSERT INTO credit_transactions (user_id, type, amount, allocation_id, session_id, usage_record_id, actor_id, note)
    VALUES (p_user, 'adjust', v_back, leg.allocation_id, p_session, p_usage_record, p_actor,
            'refund: real usage below what expiry charged');
    IF leg.lot_expired THEN
      INSERT INTO credit_transactions (user_id, type, amount, allocation_id, session_id, usage_record_id, actor_id, note)
      VALUES (p_user, 'expire', v_back, leg.allocation_id, p_session, p_usage_record, p_actor,
              'refunded into an expired allocation');
    ELSE
      UPDATE credit_allocations SET remaining_credits = remaining_credits + v_back WHERE id = leg.allocation_id;
    END IF;
  END LOOP;
  RETURN p_amount - v_left;
END $$;

-- Finalizes (p_action 'finalize') or aborts ('abort') a session. p_cost is the real cost at the session's
-- price version, computed by the service; NULL means "abort without token counts". Outcomes:
-- settled | replayed (already ended the same way) | not_active (ended another way) | not_found (unknown, or
-- another user's and the caller is not an admin). An expired session is settled late: the real cost minus
-- what expiry charged is charged (or refunded when lower), and its one usage record is corrected.
CREATE FUNCTION acct_session_settle(
  p_session text, p_caller text, p_is_admin boolean, p_action text,
  p_model text, p_price_version integer, p_cost bigint,
  p_input bigint, p_output bigint, p_cached bigint, p_reason text
) RETURNS acct_session_result LANGUAGE plpgsql AS $$
DECLARE
  s streaming_sessions%ROWTYPE;
  u usage_records%ROWTYPE;
  v_owner text;
  v_final text;
  v_held bigint;
  v_cost bigint;
  v_prior bigint;
  v_capture bigint;
  v_charge bigint := 0;
  v_unpaid bigint := 0;
  v_refund bigint := 0;
  v_usage bigint;
  v_input bigint;
  v_output bigint;
  v_cached bigint;
  v_meta jsonb;
BEGIN
  IF p_action NOT IN ('finalize', 'abort') THEN
    RAISE EXCEPTION 'acct_session_settle: unknown action %', p_action;
  END IF;
  v_final := CASE p_action WHEN 'finalize' THEN 'completed' ELSE 'aborted' END;

  -- The owner never changes, so it can be read before taking the owner's lock.
  SELECT user_id INTO v_owner FROM streaming_sessions WHERE id = p_session;
  IF NOT FOUND OR (NOT p_is_admin AND v_owner <> p_caller) THEN
    RETURN acct_session_result_of('not_found', NULL, NULL::streaming_sessions);
  END IF;
  PERFORM acct_lock_user(v_owner);
  SELECT * INTO s FROM streaming_sessions WHERE id = p_session FOR UPDATE;

  IF s.status = v_final THEN
    RETURN acct_session_result_of('replayed', NULL, s);
  ELSIF s.status NOT IN ('active', 'expired') THEN
    RETURN acct_session_result_of('not_active', NULL, s);
  END IF;
  IF p_cost IS NOT NULL AND (s.model_id <> p_model OR s.price_version <> p_price_version) THEN
    RAISE EXCEPTION 'acct_session_settle: session % is priced at %@%, not %@%',
      p_session, s.model_id, s.price_version, p_model, p_price_version;
  END IF;

  v_held := s.allocated_credits;
  v_meta := jsonb_build_object('status', v_final)
            || CASE WHEN p_reason IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('reason', p_reason) END;

  IF s.status = 'active' THEN
    v_cost := coalesce(p_cost, 0);
    v_capture := least(v_cost, v_held);
    IF v_cost > v_capture THEN
      v_charge := least(v_cost - v_capture, acct_available(v_owner));
      v_unpaid := v_cost - v_capture - v_charge;
    END IF;
    v_usage := acct_record_usage(v_owner, p_session, 'streaming', 'session', s.model_id, s.price_version,
                                 coalesce(p_input, 0), coalesce(p_output, 0), coalesce(p_cached, 0),
                                 v_cost, v_cost - v_unpaid, v_unpaid, v_meta, p_caller);
    IF acct_hold_resolve(p_session, v_owner, v_capture, v_usage, p_caller) <> v_capture THEN
      RAISE EXCEPTION 'acct_session_settle: legs of session % do not cover %', p_session, v_capture;
    END IF;
  ELSE
    -- Late settle after expiry: the hold is already resolved and expiry captured v_prior.
    v_prior := s.used_credits;
    v_cost := coalesce(p_cost, v_prior);
    v_capture := least(v_cost, v_prior);
    IF v_cost > v_prior THEN
      v_charge := least(v_cost - v_prior, acct_available(v_owner));
      v_unpaid := v_cost - v_prior - v_charge;
    ELSE
      v_refund := v_prior - v_cost;
    END IF;
    SELECT * INTO u FROM usage_records WHERE session_id = p_session FOR UPDATE;
    v_input := CASE WHEN p_cost IS NULL THEN u.input_tokens ELSE coalesce(p_input, 0) END;
    v_output := CASE WHEN p_cost IS NULL THEN u.output_tokens ELSE coalesce(p_output, 0) END;
    v_cached := CASE WHEN p_cost IS NULL THEN u.cached_input_tokens ELSE coalesce(p_cached, 0) END;
    v_meta := v_meta || jsonb_build_object('expiredBefore', true, 'expiryCharged', v_prior::text);
    UPDATE usage_records
       SET input_tokens = v_input, output_tokens = v_output, cached_input_tokens = v_cached,
           credits = v_cost, charged_credits = v_cost - v_unpaid, unpaid_credits = v_unpaid,
           metadata = coalesce(u.metadata, '{}'::jsonb) || v_meta, recorded_by = p_caller
     WHERE id = u.id;
    -- Fold the correction into the rollup row the record was counted in (same key as acct_record_usage).
    UPDATE usage_daily
       SET credits = credits + (v_cost - u.credits),
           unpaid_credits = unpaid_credits + (v_unpaid - u.unpaid_credits),
           input_tokens = input_tokens + (v_input - u.input_tokens),
           output_tokens = output_tokens + (v_output - u.output_tokens),
           cached_input_tokens = cached_input_tokens + (v_cached - u.cached_input_tokens)
     WHERE user_id = u.user_id AND day = (u.created_at AT TIME ZONE 'UTC')::date AND service = u.service
       AND operation = u.operation AND model_id = coalesce(u.model_id, '');
    v_usage := u.id;
    IF v_refund > 0 AND acct_hold_refund(p_session, v_owner, v_refund, v_usage, p_caller) <> v_refund THEN
      RAISE EXCEPTION 'acct_session_settle: session % captured less than %', p_session, v_refund;
    END IF;
  END IF;

  IF v_charge > 0 AND acct_draw(v_owner, v_charge, 'charge', p_session, v_usage, p_caller) <> v_charge THEN
    RAISE EXCEPTION 'acct_session_settle: available credits changed under lock for %', v_owner;
  END IF;

  UPDATE streaming_sessions
     SET status = v_final, used_credits = v_cost, refunded_credits = v_held - v_capture, unpaid_credits = v_unpaid,
         actual_input_tokens = CASE WHEN p_cost IS NULL THEN actual_input_tokens ELSE p_input END,
         actual_output_tokens = CASE WHEN p_cost IS NULL THEN actual_output_tokens ELSE p_output END,
         cached_input_tokens = CASE WHEN p_cost IS NULL THEN cached_input_tokens ELSE p_cached END,
         end_reason = coalesce(p_reason, end_reason), ended_at = now(), updated_at = now()
   WHERE id = p_session
  RETURNING * INTO s;
  RETURN acct_session_result_of('settled', NULL, s);
END $$;

-- Expires one overdue active session, or returns NULL when there is none to claim. The session is claimed
-- together with its owner's row, both with SKIP LOCKED: a sweeper never waits for a lock, so several
-- instances can sweep at once without double releases or deadlocks, and the owner's row is held before the
-- session's changes. p_policy: release (charge nothing) | charge_estimated_input (the estimated input
-- tokens at the session's price, capped at the hold; nothing for credits-only estimates) | charge_estimate.
CREATE FUNCTION acct_session_expire_one(p_policy text, p_actor text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  s streaming_sessions%ROWTYPE;
  v_id text;
  v_charge bigint;
  v_input bigint := 0;
  v_output bigint := 0;
  v_usage bigint;
BEGIN
  IF p_policy NOT IN ('release', 'charge_estimated_input', 'charge_estimate') THEN
    RAISE EXCEPTION 'acct_session_expire_one: unknown policy %', p_policy;
  END IF;
  SELECT ss.id INTO v_id
    FROM streaming_sessions ss JOIN user_accounts ua ON ua.id = ss.user_id
   WHERE ss.status = 'active' AND ss.expires_at < now()
   ORDER BY ss.expires_at
   LIMIT 1
     FOR UPDATE OF ua, ss SKIP LOCKED;
  IF v_id IS NULL THEN
    RETURN NULL;
  END IF;
  SELECT * INTO s FROM streaming_sessions WHERE id = v_id;

  IF p_policy = 'charge_estimate' THEN
    v_charge := s.allocated_credits;
    v_input := coalesce(s.estimated_input_tokens, 0);
    v_output := coalesce(s.estimated_output_tokens, 0);
  ELSIF p_policy = 'charge_estimated_input' AND s.estimated_input_credits IS NOT NULL THEN
    v_charge := least(s.estimated_input_credits, s.allocated_credits);
    v_input := coalesce(s.estimated_input_tokens, 0);
  ELSE
    v_charge := 0;
  END IF;

  v_usage := acct_record_usage(s.user_id, s.id, 'streaming', 'session', s.model_id, s.price_version,
                               v_input, v_output, 0, v_charge, v_charge, 0,
                               jsonb_build_object('status', 'expired', 'expiryPolicy', p_policy), p_actor);
  IF acct_hold_resolve(s.id, s.user_id, v_charge, v_usage, p_actor) <> v_charge THEN
    RAISE EXCEPTION 'acct_session_expire_one: legs of session % do not cover %', s.id, v_charge;
  END IF;
  UPDATE streaming_sessions
     SET status = 'expired', used_credits = v_charge, refunded_credits = allocated_credits - v_charge,
         unpaid_credits = 0, end_reason = 'expired', ended_at = now(), updated_at = now()
   WHERE id = s.id;
  RETURN s.id;
END $$;
