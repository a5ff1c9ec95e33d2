-- acct_refund_usage: POST /api/usage/records/:id/refund (issue 16), one call. Refunds p_amount (NULL: all that
-- is still refundable) of a usage record: unpaid credits are forgiven first ('forgive' row, no lot), then
-- charged credits go back to the lots that paid them, the latest-expiring first ('refund' rows whose
-- origin_allocation_id is the lot). Credits whose lot has expired go, together, into one new lot expiring at
-- the latest expiry of the lots that paid the record (never, if one of them never expires); when that is
-- past too, the new lot is expired at once (refunded credits are not revived, as with a release).
-- The record keeps its cost: charged/unpaid shrink, refunded_credits grows; its rollup row counts it net.
-- Outcomes: refunded | not_found | too_much (p_amount above what is refundable; nothing changed) |
-- session_expired (the record of an expired session may still be settled late: finalize or abort it first).
-- Budgets: the refunded amount leaves the spend of the budget periods the record counted in
-- (acct_budget_refund_record).
-- Events (issue 15): usage.refunded when something was refunded, then the low-balance state (returned
-- credits re-arm thresholds), in the same transaction.
-- Lock order: those budget counter rows, the owner's row, the record, then the lots in consumption order.
CREATE OR REPLACE FUNCTION acct_refund_usage(p_record bigint, p_amount bigint, p_actor text, p_reason text)
RETURNS TABLE (outcome text, user_id text, refundable bigint, forgiven bigint, returned bigint)
LANGUAGE plpgsql AS $$
DECLARE
  r usage_records%ROWTYPE;
  leg record;
  v_amount bigint;
  v_left bigint;
  v_take bigint;
  v_expired bigint := 0;
  v_expiry timestamptz;
  v_new_lot bigint;
BEGIN
  SELECT u.user_id INTO user_id FROM usage_records u WHERE u.id = p_record;
  IF NOT FOUND THEN
    outcome := 'not_found';
    RETURN NEXT;
    RETURN;
  END IF;
  PERFORM acct_budget_lock_record(p_record); -- budget counters before the user row (docs/budgets.md)
  PERFORM acct_lock_user(user_id);
  SELECT * INTO r FROM usage_records u WHERE u.id = p_record FOR UPDATE;
  refundable := r.credits - r.refunded_credits;
  forgiven := 0;
  returned := 0;
  IF r.session_id IS NOT NULL
     AND EXISTS (SELECT 1 FROM streaming_sessions s WHERE s.user_id = r.user_id AND s.id = r.session_id AND s.status = 'expired') THEN
    outcome := 'session_expired';
    RETURN NEXT;
    RETURN;
  END IF;
  v_amount := coalesce(p_amount, refundable);
  IF v_amount > refundable THEN
    outcome := 'too_much';
    RETURN NEXT;
    RETURN;
  END IF;
  forgiven := least(v_amount, r.unpaid_credits);
  returned := v_amount - forgiven;
  IF forgiven > 0 THEN
    INSERT INTO credit_transactions (user_id, type, amount, session_id, usage_record_id, actor_id, note)
    VALUES (user_id, 'forgive', forgiven, r.session_id, p_record, p_actor, p_reason);
  END IF;

  IF returned > 0 THEN
    PERFORM acct_assert_credits_cap(user_id, returned); -- credits come back: at most 9,000,000,000,000 per user
    -- The lots that paid the record, locked in consumption order (the one lot order).
    PERFORM 1 FROM credit_allocations a
     WHERE a.id IN (SELECT t.allocation_id FROM credit_transactions t
                     WHERE t.usage_record_id = p_record AND t.type IN ('charge', 'capture'))
     ORDER BY a.expires_at NULLS LAST, a.id
       FOR UPDATE;
    SELECT CASE WHEN bool_or(a.expires_at IS NULL) THEN NULL ELSE max(a.expires_at) END INTO v_expiry
      FROM credit_allocations a
     WHERE a.id IN (SELECT t.allocation_id FROM credit_transactions t
                     WHERE t.usage_record_id = p_record AND t.type IN ('charge', 'capture'));
    v_left := returned;
    FOR leg IN
      WITH paid AS (
        SELECT t.allocation_id AS lot, sum(t.amount) AS amount FROM credit_transactions t
         WHERE t.usage_record_id = p_record AND t.type IN ('charge', 'capture') GROUP BY 1
      ), back AS (
        -- Already given back: earlier refunds from this lot, and a late settle's refund of an expiry charge.
        SELECT coalesce(t.origin_allocation_id, t.allocation_id) AS lot, sum(t.amount) AS amount
          FROM credit_transactions t
         WHERE t.usage_record_id = p_record AND (t.type = 'refund' OR (t.type = 'adjust' AND t.amount > 0))
         GROUP BY 1
      )
      SELECT a.id, p.amount - coalesce(b.amount, 0) AS left_to_return,
             (a.expires_at IS NOT NULL AND a.expires_at <= now()) AS lot_expired
        FROM paid p JOIN credit_allocations a ON a.id = p.lot LEFT JOIN back b ON b.lot = p.lot
       WHERE p.amount - coalesce(b.amount, 0) > 0
       ORDER BY a.expires_at DESC NULLS FIRST, a.id DESC
    LOOP
      EXIT WHEN v_left = 0;
      v_take := least(leg.left_to_return, v_left);
      v_left := v_left - v_take;
      IF leg.lot_expired THEN
        IF v_new_lot IS NULL THEN
          INSERT INTO credit_allocations (user_id, total_credits, remaining_credits, expires_at, allocated_by, note)
          VALUES (user_id, returned, 0, v_expiry, p_actor, p_reason)
          RETURNING id INTO v_new_lot;
        END IF;
        INSERT INTO credit_transactions (user_id, type, amount, allocation_id, session_id, usage_record_id, actor_id,
                                         note, origin_allocation_id)
        VALUES (user_id, 'refund', v_take, v_new_lot, r.session_id, p_record, p_actor, p_reason, leg.id);
        v_expired := v_expired + v_take;
      ELSE
        UPDATE credit_allocations SET remaining_credits = remaining_credits + v_take WHERE id = leg.id;
        INSERT INTO credit_transactions (user_id, type, amount, allocation_id, session_id, usage_record_id, actor_id,
                                         note, origin_allocation_id)
        VALUES (user_id, 'refund', v_take, leg.id, r.session_id, p_record, p_actor, p_reason, leg.id);
      END IF;
    END LOOP;
    IF v_left <> 0 THEN
      RAISE EXCEPTION 'acct_refund_usage: record % paid less than % from its lots', p_record, returned;
    END IF;
    IF v_new_lot IS NOT NULL THEN
      -- The new lot's size is what went into it (the first guess above was the whole returned amount).
      UPDATE credit_allocations SET total_credits = v_expired WHERE id = v_new_lot;
      IF v_expiry IS NOT NULL AND v_expiry <= now() THEN
        INSERT INTO credit_transactions (user_id, type, amount, allocation_id, usage_record_id, actor_id, note)
        VALUES (user_id, 'expire', v_expired, v_new_lot, p_record, p_actor, 'refunded into an expired allocation');
      ELSE
        UPDATE credit_allocations SET remaining_credits = v_expired WHERE id = v_new_lot;
      END IF;
    END IF;
  END IF;

  UPDATE usage_records
     SET unpaid_credits = unpaid_credits - forgiven, charged_credits = charged_credits - returned,
         refunded_credits = refunded_credits + v_amount
   WHERE id = p_record;
  UPDATE usage_daily
     SET credits = credits - v_amount, unpaid_credits = unpaid_credits - forgiven,
         refunded_credits = refunded_credits + v_amount
   WHERE usage_daily.user_id = r.user_id AND day = (r.created_at AT TIME ZONE 'UTC')::date AND service = r.service
     AND operation = r.operation AND model_id = coalesce(r.model_id, '');
  PERFORM acct_budget_refund_record(p_record, v_amount); -- the spend leaves the period it counted in
  refundable := refundable - v_amount;
  IF v_amount > 0 THEN
    PERFORM acct_event_emit('usage.refunded', user_id, jsonb_build_object(
      'usageRecordId', p_record::text, 'sessionId', r.session_id, 'modelId', r.model_id,
      'credits', acct_event_credits(v_amount), 'forgivenCredits', acct_event_credits(forgiven),
      'returnedCredits', acct_event_credits(returned), 'refundedCredits', acct_event_credits(r.refunded_credits + v_amount),
      'recordCredits', acct_event_credits(r.credits), 'reason', p_reason, 'refundedBy', p_actor));
    PERFORM acct_event_balance(user_id);
  END IF;
  outcome := 'refunded';
  RETURN NEXT;
END $$;
