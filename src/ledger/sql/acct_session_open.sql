-- acct_session_open: current definition (first created in migrations/20261124002000_streaming_sessions.up.sql).
-- Opens a session and holds its estimate. Session ids are scoped to their user (key (user_id, id)): another
-- user's session with the same id is invisible here. Outcomes: created | replayed (same request hash) |
-- reused (other request) | insufficient (nothing written; available_credits says what there is).
-- p_unpaid_limit (UNPAID_LIMIT_CREDITS in micro-credits, NULL: none) refuses a new session while the user's
-- unpaid credits are above it, before credits are looked at (UNPAID_LIMIT comes before INSUFFICIENT_CREDITS).
DROP FUNCTION IF EXISTS acct_session_open(text, text, text, integer, bigint, bigint, bigint, bigint, text, integer);
CREATE OR REPLACE FUNCTION acct_session_open(
  p_session text, p_user text, p_model text, p_price_version integer,
  p_est_input bigint, p_est_output bigint, p_estimate bigint, p_est_input_credits bigint,
  p_request_hash text, p_ttl_seconds integer, p_unpaid_limit bigint DEFAULT NULL
) RETURNS acct_session_result LANGUAGE plpgsql AS $$
DECLARE
  s streaming_sessions%ROWTYPE;
  v_available bigint;
  v_budget_ids bigint[];
  v_limits bigint[];
  v_starts timestamptz[];
BEGIN
  -- Budgets (docs/budgets.md): their counter rows are locked before the user row. acct_session_open_as
  -- has just locked them (and says so, for this call only); a direct call locks them here.
  IF current_setting('acct.budgets_locked_for', true) IS DISTINCT FROM p_user THEN
    PERFORM acct_budget_lock(p_user, NULL, p_model, now());
  END IF;
  PERFORM set_config('acct.budgets_locked_for', '', true);
  PERFORM acct_lock_user(p_user);

  SELECT * INTO s FROM streaming_sessions WHERE user_id = p_user AND id = p_session;
  IF NOT FOUND THEN
    PERFORM acct_assert_unpaid_within(p_user, p_unpaid_limit);
    -- The budgets that apply and their periods, read once for the decision and the hold; raises P0B01
    -- (BUDGET_EXCEEDED) before credits are looked at.
    SELECT a.budget_ids, a.limits, a.period_starts INTO v_budget_ids, v_limits, v_starts
      FROM acct_budget_open_admit(p_user, p_model, p_estimate, now()) a;
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
    PERFORM acct_budget_hold(p_user, p_session, p_estimate, v_budget_ids, v_limits, v_starts);
    PERFORM acct_event_balance(p_user);  -- events (issue 15): credits.low / credits.depleted
    RETURN acct_session_result_of('created', v_available - p_estimate, s);
  END IF;

  IF s.request_hash <> p_request_hash THEN
    RETURN acct_session_result_of('reused', NULL, NULL::streaming_sessions);
  END IF;
  RETURN acct_session_result_of('replayed', NULL, s);
END $$;
