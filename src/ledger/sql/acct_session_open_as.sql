-- acct_session_open_as: current definition (first created in migrations/20261124004000_hot_path_user_mirror.up.sql).
-- acct_session_open after mirroring the caller. acct_session_open's own acct_lock_user then finds the row
-- already locked by this transaction, so the lock order (user row, then session, then lots) is unchanged.
DROP FUNCTION IF EXISTS acct_session_open_as(text, text, text, integer, bigint, bigint, bigint, bigint, text, integer, text, text, text);
DROP FUNCTION IF EXISTS acct_session_open_as(text, text, text, integer, bigint, bigint, bigint, bigint, text, integer, text, text, text, text);
CREATE OR REPLACE FUNCTION acct_session_open_as(
  p_session text, p_user text, p_model text, p_price_version integer,
  p_est_input bigint, p_est_output bigint, p_estimate bigint, p_est_input_credits bigint,
  p_request_hash text, p_ttl_seconds integer, p_email text, p_username text, p_role text, p_org text,
  p_unpaid_limit bigint DEFAULT NULL
) RETURNS acct_session_result LANGUAGE plpgsql AS $$
BEGIN
  -- Budget counters come before the user row (docs/budgets.md); the token's org (if any) is the one mirrored.
  PERFORM acct_budget_lock(p_user, p_org, p_model, now());
  PERFORM acct_mirror_lock_user(p_user, p_email, p_username, p_role, p_org);
  -- Tells acct_session_open (this call only: it clears the flag) that the counters are locked already.
  PERFORM set_config('acct.budgets_locked_for', p_user, true);
  RETURN acct_session_open(p_session, p_user, p_model, p_price_version, p_est_input, p_est_output, p_estimate,
                           p_est_input_credits, p_request_hash, p_ttl_seconds, p_unpaid_limit);
END $$;
