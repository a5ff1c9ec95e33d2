-- acct_allocate: current definition (first created in migrations/20261124001000_credits.up.sql).
-- Creates the user if unknown, locks it, and adds a lot with its grant row. Expiry is an absolute time
-- or a number of days from now (database time), or neither (never expires).
CREATE OR REPLACE FUNCTION acct_allocate(p_user text, p_amount bigint, p_expires_at timestamptz, p_expires_in_days integer,
                              p_actor text, p_note text)
RETURNS SETOF credit_allocations LANGUAGE plpgsql AS $$
DECLARE
  new_id bigint;
BEGIN
  INSERT INTO user_accounts (id) VALUES (p_user) ON CONFLICT (id) DO NOTHING;
  PERFORM 1 FROM user_accounts WHERE id = p_user FOR UPDATE;
  new_id := acct_grant(p_user, p_amount,
                       coalesce(p_expires_at, now() + make_interval(days => p_expires_in_days)), p_actor, p_note);
  PERFORM acct_event_granted(new_id);  -- events (issue 15): credits.granted, low-balance state
  RETURN QUERY SELECT * FROM credit_allocations WHERE id = new_id;
END $$;
