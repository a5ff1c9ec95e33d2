-- acct_expire_one_lot: current definition (first created in migrations/20261124001000_credits.up.sql).
-- Expires ONE lot past its expiry that still has credits: claims its user row with SKIP LOCKED (so many
-- instances can sweep at once and a user busy with a request is simply skipped until the next call),
-- then locks the lot, writes an 'expire' row for what is left and zeroes it. Returns no row when there is
-- nothing (claimable) to do. p_not_before bounds the scan to lots that expired since then (NULL: all),
-- so a regular sweep does not walk every lot that ever expired.
-- p_allocation: expire that lot only (the sweeper walks its candidates one by one, so one lot that fails to
-- expire does not block the others, issue 12).
DROP FUNCTION IF EXISTS acct_expire_one_lot(timestamptz);
CREATE OR REPLACE FUNCTION acct_expire_one_lot(p_not_before timestamptz DEFAULT NULL, p_allocation bigint DEFAULT NULL)
RETURNS TABLE (expired_allocation_id bigint, expired_user_id text, expired_credits bigint)
LANGUAGE plpgsql AS $$
DECLARE
  claimed record;
  left_over bigint;
BEGIN
  SELECT a.id, a.user_id INTO claimed
    FROM credit_allocations a JOIN user_accounts u ON u.id = a.user_id
   WHERE a.expires_at <= now() AND a.remaining_credits > 0
     AND (p_not_before IS NULL OR a.expires_at >= p_not_before)
     AND (p_allocation IS NULL OR a.id = p_allocation)
   ORDER BY a.expires_at, a.id
   LIMIT 1
     FOR UPDATE OF u SKIP LOCKED;
  IF NOT FOUND THEN
    RETURN;
  END IF;
  -- The lot row was read before the user lock was granted: re-read it under its own lock.
  SELECT remaining_credits INTO left_over FROM credit_allocations WHERE id = claimed.id FOR UPDATE;
  IF left_over > 0 THEN
    UPDATE credit_allocations SET remaining_credits = 0 WHERE id = claimed.id;
    INSERT INTO credit_transactions (user_id, type, amount, allocation_id, actor_id, note)
    VALUES (claimed.user_id, 'expire', left_over, claimed.id, 'system', 'allocation expired');
    PERFORM acct_event_lot_expired(claimed.user_id, claimed.id, left_over);  -- events (issue 15)
  END IF;
  expired_allocation_id := claimed.id;
  expired_user_id := claimed.user_id;
  expired_credits := left_over;
  RETURN NEXT;
END $$;
