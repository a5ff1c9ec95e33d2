-- acct_event_expiring: emits credits.expiring once per lot that still has credits and expires within
-- p_notice_days (called by the background job). "Once" is the unique index events_expiring_once, so
-- several instances may run it at once. Returns how many events it wrote (at most p_limit).
CREATE OR REPLACE FUNCTION acct_event_expiring(p_notice_days integer, p_limit integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  v_count integer;
BEGIN
  INSERT INTO events (type, user_id, data)
  SELECT 'credits.expiring', a.user_id,
         jsonb_build_object('allocationId', a.id::text, 'remainingCredits', acct_event_credits(a.remaining_credits),
                            'expiresAt', to_char(a.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))
    FROM credit_allocations a
   WHERE a.remaining_credits > 0 AND a.expires_at > now()
     AND a.expires_at <= now() + make_interval(days => p_notice_days)
     AND NOT EXISTS (SELECT 1 FROM events e WHERE e.type = 'credits.expiring' AND e.data->>'allocationId' = a.id::text)
   ORDER BY a.expires_at, a.id
   LIMIT p_limit
  ON CONFLICT DO NOTHING;
  GET DIAGNOSTICS v_count = ROW_COUNT;
  RETURN v_count;
END $$;
