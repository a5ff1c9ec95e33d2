-- acct_event_expiring: emits credits.expiring once per lot that still has credits and expires within
-- p_notice_days (called by the background job). "Once" is credit_allocations.expiring_event_id, claimed by
-- the trigger acct_event_expiring_once when the event is inserted; lots are taken with SKIP LOCKED, so
-- several instances may run it at once. Returns how many events it wrote (at most p_limit).
CREATE OR REPLACE FUNCTION acct_event_expiring(p_notice_days integer, p_limit integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  v_count integer;
BEGIN
  WITH due AS (
    SELECT a.id, a.user_id, a.remaining_credits, a.expires_at
      FROM credit_allocations a
     WHERE a.remaining_credits > 0 AND a.expires_at > now()
       AND a.expires_at <= now() + make_interval(days => p_notice_days)
       AND a.expiring_event_id IS NULL
     ORDER BY a.expires_at, a.id
     LIMIT p_limit
       FOR NO KEY UPDATE SKIP LOCKED)
  INSERT INTO events (type, user_id, data)
  SELECT 'credits.expiring', d.user_id,
         jsonb_build_object('allocationId', d.id::text, 'remainingCredits', acct_event_credits(d.remaining_credits),
                            'expiresAt', to_char(d.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))
    FROM due d
   ORDER BY d.expires_at, d.id;
  GET DIAGNOSTICS v_count = ROW_COUNT;
  RETURN v_count;
END $$;
