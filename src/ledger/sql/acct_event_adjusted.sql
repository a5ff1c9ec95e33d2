-- acct_event_adjusted: credits.adjusted for a correction (issue 16) — p_kind 'adjust' (POST /api/credits/adjust,
-- either sign) or 'revoke' (POST /api/credits/allocations/:id/revoke) — with the signed credits it moved,
-- then the low-balance state after the movement. p_extra adds the kind's own fields. The caller holds the
-- user's row lock, in the transaction of the correction.
CREATE OR REPLACE FUNCTION acct_event_adjusted(p_user text, p_kind text, p_amount bigint, p_allocation bigint,
                                               p_actor text, p_reason text, p_extra jsonb) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM acct_event_emit('credits.adjusted', p_user, jsonb_build_object(
    'kind', p_kind, 'credits', acct_event_credits(p_amount), 'allocationId', p_allocation::text,
    'reason', p_reason, 'adjustedBy', p_actor) || coalesce(p_extra, '{}'::jsonb));
  PERFORM acct_event_balance(p_user);
END $$;
