-- acct_event_granted: credits.granted for a new lot, then the low-balance state (a grant re-arms thresholds).
CREATE OR REPLACE FUNCTION acct_event_granted(p_allocation bigint) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  a credit_allocations%ROWTYPE;
BEGIN
  SELECT * INTO a FROM credit_allocations WHERE id = p_allocation;
  PERFORM acct_event_emit('credits.granted', a.user_id, jsonb_build_object(
    'allocationId', a.id::text, 'credits', acct_event_credits(a.total_credits),
    'expiresAt', to_char(a.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    'allocatedBy', a.allocated_by, 'note', a.note));
  PERFORM acct_event_balance(a.user_id);
END $$;
