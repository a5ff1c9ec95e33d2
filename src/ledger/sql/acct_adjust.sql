-- acct_adjust: POST /api/credits/adjust (issue 16), one call. p_amount is signed micro-credits.
--   > 0  creates the user if unknown and opens a lot whose first ledger row is a positive 'adjust'
--        (expiring at p_expires_at, or never); with p_settle, the new credits first pay unpaid usage.
--   < 0  takes |p_amount| from the available lots in consumption order as negative 'adjust' rows, all or
--        nothing: outcome 'insufficient' (nothing changed) when they do not cover it; 'not_found' for a user
--        never seen.
-- Events (issue 15), in the same transaction: credits.adjusted (kind 'adjust', signed credits), then the
-- low-balance state (credits.low / credits.depleted, or re-armed thresholds) after the movement.
-- Lock order: the user's row, then lots in consumption order.
CREATE OR REPLACE FUNCTION acct_adjust(p_user text, p_amount bigint, p_expires_at timestamptz, p_actor text,
                                       p_reason text, p_settle boolean)
RETURNS TABLE (outcome text, allocation_id bigint, available_before bigint, settled bigint)
LANGUAGE plpgsql AS $$
DECLARE
  lot record;
  v_left bigint;
  v_take bigint;
BEGIN
  IF p_amount = 0 THEN
    RAISE EXCEPTION 'acct_adjust: zero amount';
  END IF;
  settled := 0;
  IF p_amount > 0 THEN
    PERFORM acct_lock_user(p_user);
    available_before := acct_available(p_user);
    PERFORM acct_assert_credits_cap(p_user, p_amount); -- as a grant: at most 9,000,000,000,000 credits per user
    INSERT INTO credit_allocations (user_id, total_credits, remaining_credits, expires_at, allocated_by, note)
    VALUES (p_user, p_amount, p_amount, p_expires_at, p_actor, p_reason)
    RETURNING id INTO allocation_id;
    INSERT INTO credit_transactions (user_id, type, amount, allocation_id, actor_id, note)
    VALUES (p_user, 'adjust', p_amount, allocation_id, p_actor, p_reason);
    IF p_settle THEN
      settled := acct_settle_unpaid(p_user, p_amount, p_actor);
    END IF;
    PERFORM acct_event_adjusted(p_user, 'adjust', p_amount, allocation_id, p_actor, p_reason,
                                jsonb_build_object('expiresAt', acct_event_time(p_expires_at),
                                                   'settledCredits', acct_event_credits(settled)));
    outcome := 'adjusted';
    RETURN NEXT;
    RETURN;
  END IF;

  PERFORM 1 FROM user_accounts WHERE id = p_user FOR UPDATE;
  IF NOT FOUND THEN
    outcome := 'not_found';
    RETURN NEXT;
    RETURN;
  END IF;
  available_before := acct_available(p_user);
  IF available_before < -p_amount THEN
    outcome := 'insufficient';
    RETURN NEXT;
    RETURN;
  END IF;
  v_left := -p_amount;
  FOR lot IN
    SELECT a.id, a.remaining_credits FROM credit_allocations a
     WHERE a.user_id = p_user AND a.remaining_credits > 0 AND (a.expires_at IS NULL OR a.expires_at > now())
     ORDER BY a.expires_at NULLS LAST, a.id
       FOR UPDATE
  LOOP
    v_take := least(lot.remaining_credits, v_left);
    UPDATE credit_allocations SET remaining_credits = remaining_credits - v_take WHERE id = lot.id;
    INSERT INTO credit_transactions (user_id, type, amount, allocation_id, actor_id, note)
    VALUES (p_user, 'adjust', -v_take, lot.id, p_actor, p_reason);
    v_left := v_left - v_take;
    EXIT WHEN v_left = 0;
  END LOOP;
  IF v_left <> 0 THEN
    RAISE EXCEPTION 'acct_adjust: lots of % changed under lock', p_user;
  END IF;
  PERFORM acct_event_adjusted(p_user, 'adjust', p_amount, NULL, p_actor, p_reason,
                              jsonb_build_object('expiresAt', NULL, 'settledCredits', 0));
  outcome := 'adjusted';
  RETURN NEXT;
END $$;
