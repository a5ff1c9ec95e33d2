-- acct_rerate_user (issue 16): re-rates up to p_limit usage records of ONE user that are priced at
-- p_model@p_from_version and recorded in [p_from, p_to], to p_to_version, in one short transaction (the caller
-- loops until fewer than p_limit come back, so no user's lock is held for long). Per record, the new cost is
-- acct_usage_cost at the new version (every token kind, as costAt) and the difference:
--   more   is charged from available credits ('charge' rows linked to the record), the rest left unpaid;
--   less   lowers unpaid first, then goes back to the lots that paid the record as positive 'adjust' rows
--          (latest-expiring lot first; into an expired lot as 'adjust' + 'expire', not revived).
-- The record's price_version moves to p_to_version in the same transaction, so each difference is charged or
-- refunded exactly once and running the same re-rate again finds nothing. The part of a record already
-- refunded stays refunded (a decrease never goes below it). Lock order: user, records, lots.
-- Events (issue 15): after the batch, the low-balance state (credits.low / credits.depleted, or re-armed).
CREATE OR REPLACE FUNCTION acct_rerate_user(p_user text, p_model text, p_from_version integer, p_to_version integer,
                                            p_from timestamptz, p_to timestamptz, p_limit integer, p_actor text)
RETURNS TABLE (records integer, charged bigint, refunded bigint)
LANGUAGE plpgsql AS $$
DECLARE
  p model_prices%ROWTYPE;
  r usage_records%ROWTYPE;
  leg record;
  v_new bigint;
  v_diff bigint;
  v_pay bigint;
  v_reduce bigint;
  v_forgive bigint;
  v_back bigint;
  v_take bigint;
BEGIN
  records := 0;
  charged := 0;
  refunded := 0;
  SELECT * INTO p FROM model_prices WHERE model_id = p_model AND price_version = p_to_version;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'acct_rerate_user: no price %@%', p_model, p_to_version;
  END IF;
  PERFORM acct_lock_user(p_user);
  FOR r IN
    SELECT u.* FROM usage_records u
     WHERE u.user_id = p_user AND u.model_id = p_model AND u.price_version = p_from_version
       AND u.created_at BETWEEN p_from AND p_to
       AND NOT EXISTS (SELECT 1 FROM streaming_sessions s WHERE s.user_id = u.user_id AND s.id = u.session_id AND s.status = 'expired')
     ORDER BY u.created_at, u.id
     LIMIT p_limit
       FOR UPDATE OF u
  LOOP
    records := records + 1;
    v_new := acct_usage_cost(r, p);
    v_diff := v_new - r.credits;
    v_pay := 0;
    v_forgive := 0;
    v_back := 0;
    IF v_diff > 0 THEN
      v_pay := least(v_diff, acct_available(p_user));
      IF v_pay > 0 AND acct_draw(p_user, v_pay, 'charge', r.session_id, r.id, p_actor) <> v_pay THEN
        RAISE EXCEPTION 'acct_rerate_user: available credits changed under lock for %', p_user;
      END IF;
      charged := charged + v_diff;
    ELSIF v_diff < 0 THEN
      v_reduce := least(-v_diff, r.credits - r.refunded_credits);
      v_diff := -v_reduce;
      v_forgive := least(v_reduce, r.unpaid_credits);
      v_back := v_reduce - v_forgive;
      v_take := v_back;
      IF v_back > 0 THEN
        PERFORM 1 FROM credit_allocations a
         WHERE a.id IN (SELECT t.allocation_id FROM credit_transactions t
                         WHERE t.usage_record_id = r.id AND t.type IN ('charge', 'capture'))
         ORDER BY a.expires_at NULLS LAST, a.id
           FOR UPDATE;
        FOR leg IN
          WITH paid AS (
            SELECT t.allocation_id AS lot, sum(t.amount) AS amount FROM credit_transactions t
             WHERE t.usage_record_id = r.id AND t.type IN ('charge', 'capture') GROUP BY 1
          ), back AS (
            SELECT coalesce(t.origin_allocation_id, t.allocation_id) AS lot, sum(t.amount) AS amount
              FROM credit_transactions t
             WHERE t.usage_record_id = r.id AND (t.type = 'refund' OR (t.type = 'adjust' AND t.amount > 0))
             GROUP BY 1
          )
          SELECT a.id, pd.amount - coalesce(b.amount, 0) AS left_to_return,
                 (a.expires_at IS NOT NULL AND a.expires_at <= now()) AS lot_expired
            FROM paid pd JOIN credit_allocations a ON a.id = pd.lot LEFT JOIN back b ON b.lot = pd.lot
           WHERE pd.amount - coalesce(b.amount, 0) > 0
           ORDER BY a.expires_at DESC NULLS FIRST, a.id DESC
        LOOP
          EXIT WHEN v_take = 0;
          INSERT INTO credit_transactions (user_id, type, amount, allocation_id, session_id, usage_record_id, actor_id, note)
          VALUES (p_user, 'adjust', least(leg.left_to_return, v_take), leg.id, r.session_id, r.id, p_actor,
                  'rerate ' || p_model || ' v' || p_from_version || ' -> v' || p_to_version);
          IF leg.lot_expired THEN
            INSERT INTO credit_transactions (user_id, type, amount, allocation_id, session_id, usage_record_id, actor_id, note)
            VALUES (p_user, 'expire', least(leg.left_to_return, v_take), leg.id, r.session_id, r.id, p_actor,
                    'rerated into an expired allocation');
          ELSE
            UPDATE credit_allocations SET remaining_credits = remaining_credits + least(leg.left_to_return, v_take)
             WHERE id = leg.id;
          END IF;
          v_take := v_take - least(leg.left_to_return, v_take);
        END LOOP;
        IF v_take <> 0 THEN
          RAISE EXCEPTION 'acct_rerate_user: record % paid less than % from its lots', r.id, v_back;
        END IF;
      END IF;
      refunded := refunded + v_reduce;
    END IF;
    UPDATE usage_records
       SET credits = credits + v_diff,
           charged_credits = charged_credits + v_pay - v_back,
           unpaid_credits = unpaid_credits + CASE WHEN v_diff > 0 THEN v_diff - v_pay ELSE -v_forgive END,
           price_version = p_to_version,
           metadata = coalesce(metadata, '{}'::jsonb)
                      || jsonb_build_object('reratedFromPriceVersion', p_from_version, 'reratedCredits', (v_diff)::text)
     WHERE id = r.id;
    UPDATE usage_daily
       SET credits = credits + v_diff,
           unpaid_credits = unpaid_credits + CASE WHEN v_diff > 0 THEN v_diff - v_pay ELSE -v_forgive END
     WHERE user_id = p_user AND day = (r.created_at AT TIME ZONE 'UTC')::date AND service = r.service
       AND operation = r.operation AND model_id = coalesce(r.model_id, '');
  END LOOP;
  IF records > 0 THEN
    PERFORM acct_event_balance(p_user);
  END IF;
  RETURN NEXT;
END $$;
