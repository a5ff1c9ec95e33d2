-- acct_session_settle: current definition (first created in migrations/20261124002000_streaming_sessions.up.sql).
-- Finalizes (p_action 'finalize') or aborts ('abort') a session. p_cost is the real cost at the session's
-- price version, computed by the service; NULL means "abort without token counts". Outcomes:
-- settled | replayed (already ended the same way) | not_active (ended another way) | not_found (the owner has
-- no session with that id). Session ids are scoped to their user: p_owner (default the caller) names whose
-- session it is; only an admin may name another user. An expired session is settled late: the real cost minus
-- what expiry charged is charged (or refunded when lower), and its one usage record is corrected.
-- Token kinds: p_input is the whole prompt (p_cached, p_cache_write, p_cache_write_1h are parts of it),
-- p_output the whole completion (p_reasoning is part of it).
DROP FUNCTION IF EXISTS acct_session_settle(text, text, boolean, text, text, integer, bigint, bigint, bigint, bigint, text);
DROP FUNCTION IF EXISTS acct_session_settle(text, text, boolean, text, text, integer, bigint, bigint, bigint, bigint, text, bigint, bigint, bigint);
DROP FUNCTION IF EXISTS acct_session_settle(text, text, boolean, text, text, integer, bigint, bigint, bigint, bigint, text, text);
CREATE OR REPLACE FUNCTION acct_session_settle(
  p_session text, p_caller text, p_is_admin boolean, p_action text,
  p_model text, p_price_version integer, p_cost bigint,
  p_input bigint, p_output bigint, p_cached bigint, p_reason text,
  p_cache_write bigint DEFAULT NULL, p_cache_write_1h bigint DEFAULT NULL, p_reasoning bigint DEFAULT NULL,
  p_owner text DEFAULT NULL
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
  v_cw bigint;
  v_cw1h bigint;
  v_reasoning bigint;
  v_meta jsonb;
BEGIN
  IF p_action NOT IN ('finalize', 'abort') THEN
    RAISE EXCEPTION 'acct_session_settle: unknown action %', p_action;
  END IF;
  v_final := CASE p_action WHEN 'finalize' THEN 'completed' ELSE 'aborted' END;

  v_owner := coalesce(p_owner, p_caller);
  IF v_owner <> p_caller AND NOT p_is_admin THEN
    RETURN acct_session_result_of('not_found', NULL, NULL::streaming_sessions);
  END IF;
  PERFORM 1 FROM streaming_sessions WHERE user_id = v_owner AND id = p_session;
  IF NOT FOUND THEN
    RETURN acct_session_result_of('not_found', NULL, NULL::streaming_sessions);
  END IF;
  PERFORM acct_budget_lock_session(v_owner, p_session); -- budget counters before the user row
  PERFORM acct_lock_user(v_owner);
  SELECT * INTO s FROM streaming_sessions WHERE user_id = v_owner AND id = p_session FOR UPDATE;

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
                                 v_cost, v_cost - v_unpaid, v_unpaid, v_meta, p_caller,
                                 coalesce(p_cache_write, 0), coalesce(p_cache_write_1h, 0), coalesce(p_reasoning, 0));
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
    SELECT * INTO u FROM usage_records WHERE user_id = v_owner AND session_id = p_session FOR UPDATE;
    v_input := CASE WHEN p_cost IS NULL THEN u.input_tokens ELSE coalesce(p_input, 0) END;
    v_output := CASE WHEN p_cost IS NULL THEN u.output_tokens ELSE coalesce(p_output, 0) END;
    v_cached := CASE WHEN p_cost IS NULL THEN u.cached_input_tokens ELSE coalesce(p_cached, 0) END;
    v_cw := CASE WHEN p_cost IS NULL THEN u.cache_write_tokens ELSE coalesce(p_cache_write, 0) END;
    v_cw1h := CASE WHEN p_cost IS NULL THEN u.cache_write_1h_tokens ELSE coalesce(p_cache_write_1h, 0) END;
    v_reasoning := CASE WHEN p_cost IS NULL THEN u.reasoning_tokens ELSE coalesce(p_reasoning, 0) END;
    v_meta := v_meta || jsonb_build_object('expiredBefore', true, 'expiryCharged', v_prior::text);
    UPDATE usage_records
       SET input_tokens = v_input, output_tokens = v_output, cached_input_tokens = v_cached,
           cache_write_tokens = v_cw, cache_write_1h_tokens = v_cw1h, reasoning_tokens = v_reasoning,
           credits = v_cost, charged_credits = v_cost - v_unpaid, unpaid_credits = v_unpaid,
           metadata = coalesce(u.metadata, '{}'::jsonb) || v_meta, recorded_by = p_caller
     WHERE id = u.id;
    -- Fold the correction into the rollup row the record was counted in (same key as acct_record_usage).
    UPDATE usage_daily
       SET credits = credits + (v_cost - u.credits),
           unpaid_credits = unpaid_credits + (v_unpaid - u.unpaid_credits),
           input_tokens = input_tokens + (v_input - u.input_tokens),
           output_tokens = output_tokens + (v_output - u.output_tokens),
           cached_input_tokens = cached_input_tokens + (v_cached - u.cached_input_tokens),
           cache_write_tokens = cache_write_tokens + (v_cw - u.cache_write_tokens),
           cache_write_1h_tokens = cache_write_1h_tokens + (v_cw1h - u.cache_write_1h_tokens),
           reasoning_tokens = reasoning_tokens + (v_reasoning - u.reasoning_tokens)
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
         cache_write_tokens = CASE WHEN p_cost IS NULL THEN cache_write_tokens ELSE p_cache_write END,
         cache_write_1h_tokens = CASE WHEN p_cost IS NULL THEN cache_write_1h_tokens ELSE p_cache_write_1h END,
         reasoning_tokens = CASE WHEN p_cost IS NULL THEN reasoning_tokens ELSE p_reasoning END,
         end_reason = coalesce(p_reason, end_reason), ended_at = now(), updated_at = now()
   WHERE user_id = v_owner AND id = p_session
  RETURNING * INTO s;
  PERFORM acct_budget_settle(v_owner, p_session, v_cost); -- held -> spent on the budgets the hold counted in
  PERFORM acct_event_settled(v_owner, p_session, v_final, s.model_id, v_cost, v_unpaid);  -- events (issue 15)
  RETURN acct_session_result_of('settled', NULL, s);
END $$;
