-- acct_lock_user: current definition (first created in migrations/20261124002000_streaming_sessions.up.sql).
-- Locks the user's row, creating it if the process-level mirror cache skipped a user that is not there.
CREATE OR REPLACE FUNCTION acct_lock_user(p_user text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  PERFORM 1 FROM user_accounts WHERE id = p_user FOR UPDATE;
  IF NOT FOUND THEN
    INSERT INTO user_accounts (id) VALUES (p_user) ON CONFLICT (id) DO NOTHING;
    PERFORM 1 FROM user_accounts WHERE id = p_user FOR UPDATE;
  END IF;
END $$;
