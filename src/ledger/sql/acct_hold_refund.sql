-- acct_hold_refund: current definition (first created in migrations/20261124002000_streaming_sessions.up.sql).
-- Gives back up to p_amount of what a resolved hold captured, as 'adjust' rows to the lots it was captured
-- from, the last-captured lot first (a refund into a lot that has expired since is expired too). Used when
-- a late finalize finds the real cost below what expiry charged. Returns what it refunded.
CREATE OR REPLACE FUNCTION acct_hold_refund(p_session text, p_user text, p_amount bigint, p_usage_record bigint, p_actor text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  leg record;
  v_left bigint := p_amount;
  v_back bigint;
BEGIN
  -- Lock in consumption order (the one lot order), then walk backwards.
  PERFORM 1 FROM credit_allocations
   WHERE id IN (SELECT allocation_id FROM session_holds WHERE user_id = p_user AND session_id = p_session AND captured_credits > 0)
   ORDER BY expires_at NULLS LAST, id
     FOR UPDATE;
  FOR leg IN
    SELECT h.allocation_id, h.captured_credits, (a.expires_at IS NOT NULL AND a.expires_at <= now()) AS lot_expired
      FROM session_holds h JOIN credit_allocations a ON a.id = h.allocation_id
     WHERE h.user_id = p_user AND h.session_id = p_session AND h.captured_credits > 0
     ORDER BY a.expires_at DESC NULLS FIRST, a.id DESC
  LOOP
    EXIT WHEN v_left = 0;
    v_back := least(leg.captured_credits, v_left);
    v_left := v_left - v_back;
    INSERT INTO credit_transactions (user_id, type, amount, allocation_id, session_id, usage_record_id, actor_id, note)
    VALUES (p_user, 'adjust', v_back, leg.allocation_id, p_session, p_usage_record, p_actor,
            'refund: real usage below what expiry charged');
    IF leg.lot_expired THEN
      INSERT INTO credit_transactions (user_id, type, amount, allocation_id, session_id, usage_record_id, actor_id, note)
      VALUES (p_user, 'expire', v_back, leg.allocation_id, p_session, p_usage_record, p_actor,
              'refunded into an expired allocation');
    ELSE
      UPDATE credit_allocations SET remaining_credits = remaining_credits + v_back WHERE id = leg.allocation_id;
    END IF;
  END LOOP;
  RETURN p_amount - v_left;
END $$;
