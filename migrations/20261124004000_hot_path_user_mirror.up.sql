-- The hot path in one round trip: initialize mirrors the token's user in the same statement that opens
-- the session, instead of the auth middleware sending its own upsert first (src/services/user-account.service.ts
-- still remembers per process which users it has mirrored, so this runs only on a cache miss).

-- Mirrors the token's claims into user_accounts and locks the user's row (the first lock of every money
-- movement). The upsert writes only when a claim changed.
CREATE FUNCTION acct_mirror_lock_user(p_user text, p_email text, p_username text, p_role text)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO user_accounts AS u (id, email, username, role) VALUES (p_user, p_email, p_username, p_role)
  ON CONFLICT (id) DO UPDATE SET email = EXCLUDED.email, username = EXCLUDED.username,
                                 role = EXCLUDED.role, updated_at = now()
   WHERE (u.email, u.username, u.role) IS DISTINCT FROM (EXCLUDED.email, EXCLUDED.username, EXCLUDED.role);
  -- ON CONFLICT DO UPDATE already locks the row even when nothing changed; say it explicitly anyway.
  PERFORM 1 FROM user_accounts WHERE id = p_user FOR UPDATE;
END $$;

-- acct_session_open after mirroring the caller. acct_session_open's own acct_lock_user then finds the row
-- already locked by this transaction, so the lock order (user row, then session, then lots) is unchanged.
CREATE FUNCTION acct_session_open_as(
  p_session text, p_user text, p_model text, p_price_version integer,
  p_est_input bigint, p_est_output bigint, p_estimate bigint, p_est_input_credits bigint,
  p_request_hash text, p_ttl_seconds integer, p_email text, p_username text, p_role text
) RETURNS acct_session_result LANGUAGE plpgsql AS $$
BEGIN
  PERFORM acct_mirror_lock_user(p_user, p_email, p_username, p_role);
  RETURN acct_session_open(p_session, p_user, p_model, p_price_version, p_est_input, p_est_output, p_estimate,
                           p_est_input_credits, p_request_hash, p_ttl_seconds);
END $$;
