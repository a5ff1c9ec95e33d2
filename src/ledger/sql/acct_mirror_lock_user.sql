-- acct_mirror_lock_user: current definition (first created in migrations/20261124004000_hot_path_user_mirror.up.sql).
-- Mirrors the token's claims into user_accounts and locks the user's row (the first lock of every money
-- movement). The upsert writes only when a claim changed.
-- p_org: the token's org claim; NULL when the token carries none (then the stored org, e.g. one set with
-- PUT /api/users/:userId/org, is kept: the token wins only when it names an org).
DROP FUNCTION IF EXISTS acct_mirror_lock_user(text, text, text, text);
CREATE OR REPLACE FUNCTION acct_mirror_lock_user(p_user text, p_email text, p_username text, p_role text, p_org text)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO user_accounts AS u (id, email, username, role, org_id) VALUES (p_user, p_email, p_username, p_role, p_org)
  ON CONFLICT (id) DO UPDATE SET email = EXCLUDED.email, username = EXCLUDED.username,
                                 role = EXCLUDED.role, org_id = coalesce(EXCLUDED.org_id, u.org_id), updated_at = now()
   WHERE (u.email, u.username, u.role, coalesce(EXCLUDED.org_id, u.org_id))
         IS DISTINCT FROM (EXCLUDED.email, EXCLUDED.username, EXCLUDED.role, u.org_id);
  -- ON CONFLICT DO UPDATE already locks the row even when nothing changed; say it explicitly anyway.
  PERFORM 1 FROM user_accounts WHERE id = p_user FOR UPDATE;
END $$;
