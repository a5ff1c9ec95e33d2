-- acct_session_open_locked: the body of acct_session_open and acct_session_open_as (issue 14 made it one
-- function), called once the budget counters are locked: p_org is the org the budgets were chosen for and
-- p_budget_ids .. p_used what acct_budget_open_lock locked and read. Locks the user row (creating it if
-- missing), then, for a new session: the unpaid limit, the budget decision (acct_budget_open_decide, raises
-- P0B01 before credits are looked at), the credits test, the session, the draw and the budget hold, all in
-- this one statement. Should the user's org have changed between the budget lock and the user row lock
-- (PUT /api/users/:userId/org meanwhile), the budgets of the org now stored are locked and decided on instead
-- (acct_budget_open_admit), as before issue 14's change.
CREATE OR REPLACE FUNCTION acct_session_open_locked(
  p_session text, p_user text, p_model text, p_price_version integer,
  p_est_input bigint, p_est_output bigint, p_estimate bigint, p_est_input_credits bigint,
  p_request_hash text, p_ttl_seconds integer, p_unpaid_limit bigint,
  p_org text, p_budget_ids bigint[], p_limits bigint[], p_period_starts timestamptz[], p_used bigint[]
) RETURNS acct_session_result LANGUAGE plpgsql AS $$
DECLARE
  s streaming_sessions%ROWTYPE;
  v_available bigint;
  v_org text;
  v_budget_ids bigint[] := p_budget_ids;
  v_limits bigint[] := p_limits;
  v_starts timestamptz[] := p_period_starts;
BEGIN
  SELECT org_id INTO v_org FROM user_accounts WHERE id = p_user FOR UPDATE;
  IF NOT FOUND THEN
    PERFORM acct_lock_user(p_user);
    v_org := NULL;
  END IF;

  SELECT * INTO s FROM streaming_sessions WHERE user_id = p_user AND id = p_session;
  IF NOT FOUND THEN
    PERFORM acct_assert_unpaid_within(p_user, p_unpaid_limit);
    -- Budgets: raises P0B01 (BUDGET_EXCEEDED) before credits are looked at.
    IF v_org IS NOT DISTINCT FROM p_org THEN
      PERFORM acct_budget_open_decide(p_estimate, p_budget_ids, p_limits, p_period_starts, p_used);
    ELSE
      SELECT a.budget_ids, a.limits, a.period_starts INTO v_budget_ids, v_limits, v_starts
        FROM acct_budget_open_admit(p_user, p_model, p_estimate, now()) a;
    END IF;
    v_available := acct_available(p_user);
    IF v_available < p_estimate THEN
      RETURN acct_session_result_of('insufficient', v_available, NULL::streaming_sessions);
    END IF;
    INSERT INTO streaming_sessions (id, user_id, model_id, price_version, status, estimated_input_tokens,
                                    estimated_output_tokens, estimated_credits, estimated_input_credits,
                                    allocated_credits, request_hash, expires_at)
    VALUES (p_session, p_user, p_model, p_price_version, 'active', p_est_input, p_est_output, p_estimate,
            p_est_input_credits, p_estimate, p_request_hash, now() + make_interval(secs => p_ttl_seconds))
    RETURNING * INTO s;
    -- The user's row lock serializes this user's opens, so no concurrent insert of the same key can win.
    IF acct_draw(p_user, p_estimate, 'hold', p_session, NULL, p_user) <> p_estimate THEN
      RAISE EXCEPTION 'acct_session_open: hold of % for session % not covered', p_estimate, p_session;
    END IF;
    IF array_length(v_budget_ids, 1) > 0 THEN
      PERFORM acct_budget_hold(p_user, p_session, p_estimate, v_budget_ids, v_limits, v_starts);
    END IF;
    PERFORM acct_event_balance(p_user);  -- events (issue 15): credits.low / credits.depleted
    RETURN acct_session_result_of('created', v_available - p_estimate, s);
  END IF;

  IF s.request_hash <> p_request_hash THEN
    RETURN acct_session_result_of('reused', NULL, NULL::streaming_sessions);
  END IF;
  RETURN acct_session_result_of('replayed', NULL, s);
END $$;
