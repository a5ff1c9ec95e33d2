-- acct_grant: current definition (first created in migrations/20261124000100_initial_schema.up.sql).
-- Adds a lot and its grant row. Returns the new allocation id.
CREATE OR REPLACE FUNCTION acct_grant(p_user text, p_amount bigint, p_expires_at timestamptz, p_actor text, p_note text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  new_id bigint;
BEGIN
  -- Bound (issue 12): what a user has in lots plus what their active sessions hold never exceeds 9e18
  -- micro-credits, so acct_available's bigint sum cannot overflow. Releases only move held credits back,
  -- so checking at the one place credits enter keeps it true. Class 22: the API answers 400, nothing changes.
  IF (SELECT coalesce(sum(remaining_credits), 0) FROM credit_allocations WHERE user_id = p_user)
     + (SELECT coalesce(sum(h.held_credits - h.captured_credits - h.released_credits), 0)
          FROM session_holds h JOIN streaming_sessions s ON s.user_id = h.user_id AND s.id = h.session_id
         WHERE h.user_id = p_user AND s.status = 'active')
     + p_amount > 9000000000000000000 THEN
    RAISE EXCEPTION 'acct_grant: a user may hold at most 9,000,000,000,000 credits' USING ERRCODE = 'numeric_value_out_of_range';
  END IF;
  INSERT INTO credit_allocations (user_id, total_credits, remaining_credits, expires_at, allocated_by, note)
  VALUES (p_user, p_amount, p_amount, p_expires_at, p_actor, p_note)
  RETURNING id INTO new_id;
  INSERT INTO credit_transactions (user_id, type, amount, allocation_id, actor_id, note)
  VALUES (p_user, 'grant', p_amount, new_id, p_actor, p_note);
  RETURN new_id;
END $$;
