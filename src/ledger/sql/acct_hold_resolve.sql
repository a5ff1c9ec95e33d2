-- acct_hold_resolve: current definition (first created in migrations/20261124002000_streaming_sessions.up.sql).
-- Resolves a hold: captures up to p_capture from its legs in consumption order (soonest-expiring lot first)
-- and releases the rest to the same lots. A share released into a lot that has expired since is written as
-- 'release' then 'expire' (remaining unchanged): expired credits are not revived. Returns what it captured.
CREATE OR REPLACE FUNCTION acct_hold_resolve(p_session text, p_user text, p_capture bigint, p_usage_record bigint, p_actor text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  leg record;
  v_left bigint := p_capture;
  v_cap bigint;
  v_rel bigint;
BEGIN
  FOR leg IN
    SELECT h.allocation_id, h.held_credits, (a.expires_at IS NOT NULL AND a.expires_at <= now()) AS lot_expired
      FROM session_holds h JOIN credit_allocations a ON a.id = h.allocation_id
     WHERE h.user_id = p_user AND h.session_id = p_session
     ORDER BY a.expires_at NULLS LAST, a.id
       FOR UPDATE OF a
  LOOP
    v_cap := least(leg.held_credits, v_left);
    v_rel := leg.held_credits - v_cap;
    v_left := v_left - v_cap;
    -- The leg's capture and release rows (capture first) in one statement: PostgreSQL sets up the ledger's
    -- CHECKs, keys and partition routing once per statement, not once per row (issue 19).
    INSERT INTO credit_transactions (user_id, type, amount, allocation_id, session_id, usage_record_id, actor_id)
    SELECT p_user, leg_row.type, leg_row.amount, leg.allocation_id, p_session, p_usage_record, p_actor
      FROM (VALUES (1, 'capture', v_cap), (2, 'release', v_rel)) AS leg_row (n, type, amount)
     WHERE leg_row.amount > 0
     ORDER BY leg_row.n;
    IF v_rel > 0 THEN
      IF leg.lot_expired THEN
        INSERT INTO credit_transactions (user_id, type, amount, allocation_id, session_id, usage_record_id, actor_id, note)
        VALUES (p_user, 'expire', v_rel, leg.allocation_id, p_session, p_usage_record, p_actor,
                'released into an expired allocation');
      ELSE
        UPDATE credit_allocations SET remaining_credits = remaining_credits + v_rel WHERE id = leg.allocation_id;
      END IF;
    END IF;
    UPDATE session_holds SET captured_credits = v_cap, released_credits = v_rel
     WHERE user_id = p_user AND session_id = p_session AND allocation_id = leg.allocation_id;
  END LOOP;
  RETURN p_capture - v_left;
END $$;
