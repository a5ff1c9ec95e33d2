-- acct_session_open_as: current definition (first created in migrations/20261124004000_hot_path_user_mirror.up.sql).
-- acct_session_open after mirroring the caller: the budget counters first (the token's org, if any, is the
-- one mirrored; else the stored one), then the mirror, which locks the user row, then the rest of
-- acct_session_open (acct_session_open_locked), whose own user row lock finds the row already locked by this
-- transaction: the lock order (budget counters, user row, session, lots) is unchanged.
DROP FUNCTION IF EXISTS acct_session_open_as(text, text, text, integer, bigint, bigint, bigint, bigint, text, integer, text, text, text);
DROP FUNCTION IF EXISTS acct_session_open_as(text, text, text, integer, bigint, bigint, bigint, bigint, text, integer, text, text, text, text);
CREATE OR REPLACE FUNCTION acct_session_open_as(
  p_session text, p_user text, p_model text, p_price_version integer,
  p_est_input bigint, p_est_output bigint, p_estimate bigint, p_est_input_credits bigint,
  p_request_hash text, p_ttl_seconds integer, p_email text, p_username text, p_role text, p_org text,
  p_unpaid_limit bigint DEFAULT NULL
) RETURNS acct_session_result LANGUAGE plpgsql AS $$
DECLARE
  v_org text := p_org;
  l record;
BEGIN
  IF v_org IS NULL THEN
    SELECT org_id INTO v_org FROM user_accounts WHERE id = p_user;
  END IF;
  SELECT * INTO l FROM acct_budget_open_lock(p_user, v_org, p_model, now());
  PERFORM acct_mirror_lock_user(p_user, p_email, p_username, p_role, p_org);
  RETURN acct_session_open_locked(p_session, p_user, p_model, p_price_version, p_est_input, p_est_output, p_estimate,
                                  p_est_input_credits, p_request_hash, p_ttl_seconds, p_unpaid_limit,
                                  v_org, l.budget_ids, l.limits, l.period_starts, l.used);
END $$;
