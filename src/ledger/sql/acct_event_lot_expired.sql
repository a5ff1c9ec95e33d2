-- acct_event_lot_expired: credits.expired when the sweeper writes off what was left in a lot, then the
-- low-balance state (available already excluded the lot; this is when the crossing is noticed and told).
CREATE OR REPLACE FUNCTION acct_event_lot_expired(p_user text, p_allocation bigint, p_credits bigint)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  PERFORM acct_event_emit('credits.expired', p_user, jsonb_build_object(
    'allocationId', p_allocation::text, 'expiredCredits', acct_event_credits(p_credits),
    'expiresAt', (SELECT to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
                    FROM credit_allocations WHERE id = p_allocation)));
  PERFORM acct_event_balance(p_user);
END $$;
