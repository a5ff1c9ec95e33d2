-- acct_session_open: current definition (first created in migrations/20261124002000_streaming_sessions.up.sql).
-- Opens a session and holds its estimate. Session ids are scoped to their user (key (user_id, id)): another
-- user's session with the same id is invisible here. Outcomes: created | replayed (same request hash) |
-- reused (other request) | insufficient (nothing written; available_credits says what there is).
-- p_unpaid_limit (UNPAID_LIMIT_CREDITS in micro-credits, NULL: none) refuses a new session while the user's
-- unpaid credits are above it, before credits are looked at (UNPAID_LIMIT comes before INSUFFICIENT_CREDITS).
-- Budgets (docs/budgets.md): their counter rows are locked (and read) before the user row, by
-- acct_budget_open_lock on the user's stored org; acct_session_open_locked does the rest.
DROP FUNCTION IF EXISTS acct_session_open(text, text, text, integer, bigint, bigint, bigint, bigint, text, integer);
CREATE OR REPLACE FUNCTION acct_session_open(
  p_session text, p_user text, p_model text, p_price_version integer,
  p_est_input bigint, p_est_output bigint, p_estimate bigint, p_est_input_credits bigint,
  p_request_hash text, p_ttl_seconds integer, p_unpaid_limit bigint DEFAULT NULL
) RETURNS acct_session_result LANGUAGE plpgsql AS $$
DECLARE
  v_org text;
  l record;
BEGIN
  SELECT org_id INTO v_org FROM user_accounts WHERE id = p_user;
  SELECT * INTO l FROM acct_budget_open_lock(p_user, v_org, p_model, now());
  RETURN acct_session_open_locked(p_session, p_user, p_model, p_price_version, p_est_input, p_est_output, p_estimate,
                                  p_est_input_credits, p_request_hash, p_ttl_seconds, p_unpaid_limit,
                                  v_org, l.budget_ids, l.limits, l.period_starts, l.used);
END $$;
