-- acct_grant: current definition (first created in migrations/20261124000100_initial_schema.up.sql).
-- Adds a lot and its grant row. Returns the new allocation id.
CREATE OR REPLACE FUNCTION acct_grant(p_user text, p_amount bigint, p_expires_at timestamptz, p_actor text, p_note text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  new_id bigint;
BEGIN
  PERFORM acct_assert_credits_cap(p_user, p_amount); -- at most 9,000,000,000,000 credits per user
  INSERT INTO credit_allocations (user_id, total_credits, remaining_credits, expires_at, allocated_by, note)
  VALUES (p_user, p_amount, p_amount, p_expires_at, p_actor, p_note)
  RETURNING id INTO new_id;
  INSERT INTO credit_transactions (user_id, type, amount, allocation_id, actor_id, note)
  VALUES (p_user, 'grant', p_amount, new_id, p_actor, p_note);
  RETURN new_id;
END $$;
