-- acct_draw: current definition (first created in migrations/20261124000100_initial_schema.up.sql).
-- Draws up to p_amount from the user's live lots, soonest expiry first, then no expiry, oldest first.
-- kind 'hold' also writes hold legs for p_session; kind 'charge' spends directly. Returns what was drawn,
-- which is less than p_amount only when the live lots do not cover it.
CREATE OR REPLACE FUNCTION acct_draw(p_user text, p_amount bigint, p_kind text, p_session text, p_usage_record bigint, p_actor text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  lot record;
  take bigint;
  still_needed bigint := p_amount;
BEGIN
  IF p_kind NOT IN ('hold', 'charge') THEN
    RAISE EXCEPTION 'acct_draw: unknown kind %', p_kind;
  END IF;
  IF p_amount <= 0 THEN
    RETURN 0;
  END IF;
  FOR lot IN
    SELECT id, remaining_credits FROM credit_allocations
     WHERE user_id = p_user AND remaining_credits > 0 AND (expires_at IS NULL OR expires_at > now())
     ORDER BY expires_at NULLS LAST, id
       FOR UPDATE
  LOOP
    take := least(lot.remaining_credits, still_needed);
    UPDATE credit_allocations SET remaining_credits = remaining_credits - take
     WHERE id = lot.id AND remaining_credits >= take;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'acct_draw: lot % changed while locked', lot.id;
    END IF;
    INSERT INTO credit_transactions (user_id, type, amount, allocation_id, session_id, usage_record_id, actor_id)
    VALUES (p_user, p_kind, take, lot.id, p_session, p_usage_record, p_actor);
    IF p_kind = 'hold' THEN
      -- A session's hold may grow later (acct_session_extend) from a lot it already holds from.
      INSERT INTO session_holds AS h (session_id, allocation_id, user_id, held_credits)
      VALUES (p_session, lot.id, p_user, take)
      ON CONFLICT (user_id, session_id, allocation_id) DO UPDATE SET held_credits = h.held_credits + EXCLUDED.held_credits;
    END IF;
    still_needed := still_needed - take;
    EXIT WHEN still_needed = 0;
  END LOOP;
  RETURN p_amount - still_needed;
END $$;
