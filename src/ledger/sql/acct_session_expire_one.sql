-- acct_session_expire_one: current definition (first created in migrations/20261124002000_streaming_sessions.up.sql).
-- Expires one overdue active session. The session is claimed
-- together with its owner's row, both with SKIP LOCKED: a sweeper never waits for a lock, so several
-- instances can sweep at once without double releases or deadlocks, and the owner's row is held before the
-- session's changes. p_policy: release (charge nothing) | charge_estimated_input (the estimated input
-- tokens at the session's price, capped at the hold; nothing for credits-only estimates) | charge_estimate.
-- Returns the expired session's key (user_id, id); no row when there was nothing to claim. With p_user and
-- p_session it expires that session only (if still active, overdue and not locked): the sweeper walks its
-- candidates one by one, so one session that fails to expire does not block the others (issue 12).
DROP FUNCTION IF EXISTS acct_session_expire_one(text, text);
CREATE OR REPLACE FUNCTION acct_session_expire_one(p_policy text, p_actor text, p_user text DEFAULT NULL,
                                                   p_session text DEFAULT NULL)
RETURNS TABLE (expired_user_id text, expired_session_id text) LANGUAGE plpgsql AS $$
DECLARE
  s streaming_sessions%ROWTYPE;
  v_id text;
  v_user text;
  v_charge bigint;
  v_input bigint := 0;
  v_output bigint := 0;
  v_usage bigint;
  v_cand record;
BEGIN
  IF p_policy NOT IN ('release', 'charge_estimated_input', 'charge_estimate') THEN
    RAISE EXCEPTION 'acct_session_expire_one: unknown policy %', p_policy;
  END IF;
  -- Budget counters come before the user row (docs/budgets.md): try a few overdue sessions, each by taking
  -- its counters then claiming it with its owner, all SKIP LOCKED, so the sweeper never waits.
  FOR v_cand IN SELECT ss.id, ss.user_id FROM streaming_sessions ss
                 WHERE ss.status = 'active' AND ss.expires_at < now()
                   AND (p_session IS NULL OR (ss.user_id = p_user AND ss.id = p_session))
                 ORDER BY ss.expires_at LIMIT 20 LOOP
    CONTINUE WHEN NOT acct_budget_try_lock_session(v_cand.user_id, v_cand.id);
    SELECT ss.user_id, ss.id INTO v_user, v_id
      FROM streaming_sessions ss JOIN user_accounts ua ON ua.id = ss.user_id
     WHERE ss.user_id = v_cand.user_id AND ss.id = v_cand.id AND ss.status = 'active' AND ss.expires_at < now()
       FOR UPDATE OF ua, ss SKIP LOCKED;
    EXIT WHEN v_id IS NOT NULL;
  END LOOP;
  IF v_id IS NULL THEN
    RETURN;
  END IF;
  SELECT * INTO s FROM streaming_sessions ss WHERE ss.user_id = v_user AND ss.id = v_id;

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
   WHERE streaming_sessions.user_id = s.user_id AND streaming_sessions.id = s.id;
  PERFORM acct_budget_settle(s.user_id, s.id, v_charge); -- the hold leaves the budgets; what expiry charged is spent
  PERFORM acct_event_session_expired(s.user_id, s.id, s.model_id, s.allocated_credits, v_charge, p_policy);  -- events (issue 15)
  expired_user_id := s.user_id;
  expired_session_id := s.id;
  RETURN NEXT;
END $$;
