-- acct_schedule_grant_one (issue 16): makes ONE due scheduled grant, or returns no row when none is due (as of
-- p_now) or claimable. The schedule is claimed together with its user's row, both FOR UPDATE SKIP LOCKED,
-- so any number of instances can run this at once: each due (schedule, period) is granted by exactly one of
-- them, and the primary key of credit_schedule_grants (inserted in this transaction) makes a second grant of
-- the same period impossible even if two got that far. Periods missed while no instance ran are granted one by
-- one, oldest first, on later calls (catch-up). Per grant, in this order:
--   rollover cap  credits left in this schedule's earlier lots above rollover_cap_credits are revoked
--                 ('revoke' rows, note 'rollover cap'), latest-expiring lots last;
--   grant         a lot of `credits` ('grant' row), expiring at the period's end (expire_at_period_end), after
--                 expires_in_days, or never;
--   settlement    with p_settle, the new credits first pay unpaid usage (acct_settle_unpaid).
--   events        credits.granted (with scheduleId, periodStart and the rollover revoked), then the
--                 low-balance state once, after the whole movement (issue 15).
-- Lock order: user row (with the schedule), then lots in consumption order.
CREATE OR REPLACE FUNCTION acct_schedule_grant_one(p_now timestamptz, p_settle boolean)
RETURNS TABLE (schedule_id bigint, user_id text, period_start timestamptz, allocation_id bigint, credits bigint,
               revoked bigint)
LANGUAGE plpgsql AS $$
DECLARE
  s credit_schedules%ROWTYPE;
  lot record;
  v_end timestamptz;
  v_left_over bigint;
  v_excess bigint;
  v_take bigint;
  v_constraint text;
BEGIN
  SELECT cs.* INTO s
    FROM credit_schedules cs JOIN user_accounts ua ON ua.id = cs.user_id
   WHERE cs.deleted_at IS NULL AND cs.next_period_start <= p_now AND cs.start_at <= p_now
   ORDER BY cs.next_period_start, cs.id
   LIMIT 1
     FOR UPDATE OF cs, ua SKIP LOCKED;
  IF NOT FOUND THEN
    RETURN;
  END IF;
  v_end := acct_period_end(s.period, s.next_period_start, s.timezone);
  IF EXISTS (SELECT 1 FROM credit_schedule_grants g WHERE g.schedule_id = s.id AND g.period_start = s.next_period_start) THEN
    -- Already granted (cannot happen while next_period_start advances in the same transaction; kept as a guard).
    UPDATE credit_schedules SET next_period_start = v_end WHERE id = s.id;
    RETURN;
  END IF;

  schedule_id := s.id;
  user_id := s.user_id;
  period_start := s.next_period_start;
  BEGIN
    revoked := 0;
    IF s.rollover_cap_credits IS NOT NULL THEN
      SELECT coalesce(sum(a.remaining_credits), 0) INTO v_left_over
        FROM credit_allocations a JOIN credit_schedule_grants g ON g.allocation_id = a.id
       WHERE g.schedule_id = s.id AND a.remaining_credits > 0 AND (a.expires_at IS NULL OR a.expires_at > now());
      v_excess := v_left_over - s.rollover_cap_credits;
      IF v_excess > 0 THEN
        FOR lot IN
          SELECT a.id, a.remaining_credits
            FROM credit_allocations a JOIN credit_schedule_grants g ON g.allocation_id = a.id
           WHERE g.schedule_id = s.id AND a.remaining_credits > 0 AND (a.expires_at IS NULL OR a.expires_at > now())
           ORDER BY a.expires_at NULLS LAST, a.id
             FOR UPDATE OF a
        LOOP
          EXIT WHEN v_excess = 0;
          v_take := least(lot.remaining_credits, v_excess);
          UPDATE credit_allocations SET remaining_credits = remaining_credits - v_take WHERE id = lot.id;
          INSERT INTO credit_transactions (user_id, type, amount, allocation_id, actor_id, note)
          VALUES (s.user_id, 'revoke', v_take, lot.id, 'system', 'rollover cap of schedule ' || s.id);
          v_excess := v_excess - v_take;
          revoked := revoked + v_take;
        END LOOP;
      END IF;
    END IF;

    allocation_id := acct_grant(s.user_id, s.credits,
                                CASE WHEN s.expire_at_period_end THEN v_end
                                     WHEN s.expires_in_days IS NOT NULL THEN s.next_period_start + make_interval(days => s.expires_in_days)
                                END,
                                s.created_by, 'schedule ' || s.id || ' period ' || to_char(s.next_period_start AT TIME ZONE s.timezone, 'YYYY-MM-DD'));
  EXCEPTION WHEN numeric_value_out_of_range THEN
    GET STACKED DIAGNOSTICS v_constraint = CONSTRAINT_NAME;
    IF v_constraint IS DISTINCT FROM 'user_credits_cap' THEN
      RAISE;
    END IF;
    -- The user is at the cap on what one user may hold (acct_assert_credits_cap): this period grants nothing,
    -- and its rollover revokes are undone with the grant (one block). The schedule moves on: raising would
    -- stop it and, as it stays the oldest due one, every schedule due after it, at every run. Returns credits 0
    -- and no allocation (the caller counts no grant).
    UPDATE credit_schedules SET next_period_start = v_end WHERE id = s.id;
    allocation_id := NULL;
    credits := 0;
    revoked := 0;
    RETURN NEXT;
    RETURN;
  END;
  INSERT INTO credit_schedule_grants (schedule_id, period_start, period_end, allocation_id)
  VALUES (s.id, s.next_period_start, v_end, allocation_id);
  UPDATE credit_schedules SET next_period_start = v_end WHERE id = s.id;
  IF p_settle THEN
    PERFORM acct_settle_unpaid(s.user_id, s.credits, 'system');
  END IF;
  PERFORM acct_event_emit('credits.granted', s.user_id, jsonb_build_object(
    'allocationId', allocation_id::text, 'credits', acct_event_credits(s.credits),
    'expiresAt', acct_event_time(a.expires_at), 'allocatedBy', a.allocated_by, 'note', a.note,
    'scheduleId', s.id::text, 'periodStart', acct_event_time(s.next_period_start),
    'rolloverRevokedCredits', acct_event_credits(revoked)))
    FROM credit_allocations a WHERE a.id = allocation_id;
  PERFORM acct_event_balance(s.user_id);
  credits := s.credits;
  RETURN NEXT;
END $$;
