-- acct_revoke: POST /api/credits/allocations/:id/revoke (issue 16), one call. Voids up to p_amount (NULL: all)
-- of what is left in a lot, as one 'revoke' row. Credits held by active sessions are not in remaining_credits
-- and are not revocable: they are reported as held. An expired lot has nothing left to revoke.
-- Outcomes: revoked (possibly 0 credits) | not_found. Lock order: the owner's row, then the lot.
-- Events (issue 15): when credits were revoked, credits.adjusted (kind 'revoke', negative credits) and the
-- low-balance state, in the same transaction; revoking nothing writes no event.
CREATE OR REPLACE FUNCTION acct_revoke(p_allocation bigint, p_amount bigint, p_actor text, p_reason text)
RETURNS TABLE (outcome text, user_id text, revoked bigint, held bigint)
LANGUAGE plpgsql AS $$
DECLARE
  lot credit_allocations%ROWTYPE;
  v_revocable bigint;
BEGIN
  -- The owner never changes, so it may be read before taking the owner's lock.
  SELECT a.user_id INTO user_id FROM credit_allocations a WHERE a.id = p_allocation;
  IF NOT FOUND THEN
    outcome := 'not_found';
    RETURN NEXT;
    RETURN;
  END IF;
  PERFORM acct_lock_user(user_id);
  SELECT * INTO lot FROM credit_allocations a WHERE a.id = p_allocation FOR UPDATE;
  SELECT coalesce(sum(h.held_credits - h.captured_credits - h.released_credits), 0) INTO held
    FROM session_holds h JOIN streaming_sessions s ON s.user_id = h.user_id AND s.id = h.session_id
   WHERE h.allocation_id = p_allocation AND s.status = 'active';
  v_revocable := CASE WHEN lot.expires_at IS NOT NULL AND lot.expires_at <= now() THEN 0 ELSE lot.remaining_credits END;
  revoked := least(coalesce(p_amount, v_revocable), v_revocable);
  IF revoked > 0 THEN
    UPDATE credit_allocations SET remaining_credits = remaining_credits - revoked WHERE id = p_allocation;
    INSERT INTO credit_transactions (user_id, type, amount, allocation_id, actor_id, note)
    VALUES (user_id, 'revoke', revoked, p_allocation, p_actor, p_reason);
    PERFORM acct_event_adjusted(user_id, 'revoke', -revoked, p_allocation, p_actor, p_reason,
                                jsonb_build_object('heldCredits', acct_event_credits(held)));
  END IF;
  outcome := 'revoked';
  RETURN NEXT;
END $$;
