-- acct_rerate_user (issue 16): re-rates up to p_limit usage records of ONE user that are priced at
-- p_model@p_from_version and recorded in [p_from, p_to], to p_to_version, in one short transaction, and stops
-- early once it has worked 10 ms (at least one record), so the user's lock is never held for long whatever
-- the machine; the caller loops until it returns 0 records. Per record, the new cost is
-- acct_usage_cost at the new version (every token kind, as costAt) and the difference:
--   more   is charged from available credits ('charge' rows linked to the record), the rest left unpaid;
--   less   lowers unpaid first, then goes back to the lots that paid the record as positive 'adjust' rows
--          (latest-expiring lot first; into an expired lot as 'adjust' + 'expire', not revived).
-- The record's price_version moves to p_to_version in the same transaction, so each difference is charged or
-- refunded exactly once and running the same re-rate again finds nothing. The part of a record already
-- refunded stays refunded (a decrease never goes below it). Lock order: user, records, lots.
-- Cost per record is kept flat: the user's live lots are read once per batch and drawn in memory (one UPDATE
-- per lot at the end), and the rollups get one UPDATE per row at the end — updating the same row once per
-- record would make every later read in the transaction walk all its earlier versions.
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
  v_left bigint;
  v_reduce bigint;
  v_forgive bigint;
  v_back bigint;
  v_take bigint;
  v_started timestamptz := clock_timestamp();
  -- The user's live lots in consumption order, locked, with what is left in each as drawn in this batch
  -- (NULL until the first charge needs them; written back by the flush at the end, or before a refund into
  -- a lot that is not among them).
  v_lot_id bigint[];
  v_lot_left bigint[];
  v_lot_orig bigint[];
  v_avail bigint;
  j integer;
  -- Per re-rated record: its change of credits and of unpaid credits, for the rollups.
  v_ids bigint[] := '{}';
  v_dcredits bigint[] := '{}';
  v_dunpaid bigint[] := '{}';
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
    -- The records of a session that expired (it may still be finalized late) are left alone. The plan must be
    -- an ordered scan of usage_records_rerate that stops after p_limit rows, whatever the statistics say:
    -- price_version is compared as a range and leads the ORDER BY, an order only that index gives (with an
    -- equality the planner may walk (user_id, created_at, id) past every record already re-rated), and the
    -- expired sessions are a NOT IN (an anti-join estimated at one row would make a full sort look cheap).
    SELECT u.* FROM usage_records u
     WHERE u.user_id = p_user AND u.model_id = p_model
       AND u.price_version BETWEEN p_from_version AND p_from_version
       AND u.created_at BETWEEN p_from AND p_to
       AND (u.session_id IS NULL
            OR u.session_id NOT IN (SELECT s.id FROM streaming_sessions s WHERE s.user_id = p_user AND s.status = 'expired'))
     ORDER BY u.price_version, u.created_at, u.id
     LIMIT p_limit
       FOR UPDATE OF u
  LOOP
    -- Time budget: a concurrent request of this user waits for at most about this long.
    EXIT WHEN records > 0 AND clock_timestamp() - v_started > interval '10 milliseconds';
    records := records + 1;
    v_new := acct_usage_cost(r, p);
    v_diff := v_new - r.credits;
    v_pay := 0;
    v_forgive := 0;
    v_back := 0;
    IF v_diff > 0 THEN
      IF v_lot_id IS NULL THEN
        SELECT coalesce(array_agg(l.id ORDER BY l.expires_at NULLS LAST, l.id), '{}'),
               coalesce(array_agg(l.remaining_credits ORDER BY l.expires_at NULLS LAST, l.id), '{}')
          INTO v_lot_id, v_lot_left
          FROM (SELECT a.id, a.remaining_credits, a.expires_at FROM credit_allocations a
                 WHERE a.user_id = p_user AND a.remaining_credits > 0 AND (a.expires_at IS NULL OR a.expires_at > now())
                 ORDER BY a.expires_at NULLS LAST, a.id
                   FOR UPDATE) l;
        v_lot_orig := v_lot_left;
        SELECT coalesce(sum(x), 0) INTO v_avail FROM unnest(v_lot_left) x;
      END IF;
      v_pay := least(v_diff, v_avail);
      v_left := v_pay;
      j := 1;
      WHILE v_left > 0 LOOP
        IF j > coalesce(array_length(v_lot_id, 1), 0) THEN
          RAISE EXCEPTION 'acct_rerate_user: available credits changed under lock for %', p_user;
        END IF;
        v_take := least(v_lot_left[j], v_left);
        IF v_take > 0 THEN
          v_lot_left[j] := v_lot_left[j] - v_take;
          INSERT INTO credit_transactions (user_id, type, amount, allocation_id, session_id, usage_record_id, actor_id)
          VALUES (p_user, 'charge', v_take, v_lot_id[j], r.session_id, r.id, p_actor);
          v_left := v_left - v_take;
        END IF;
        j := j + 1;
      END LOOP;
      v_avail := v_avail - v_pay;
      charged := charged + v_diff;
    ELSIF v_diff < 0 THEN
      v_reduce := least(-v_diff, r.credits - r.refunded_credits);
      v_diff := -v_reduce;
      v_forgive := least(v_reduce, r.unpaid_credits);
      v_back := v_reduce - v_forgive;
      v_take := v_back;
      IF v_back > 0 THEN
        -- A lot that is not among the ones drawn in memory is updated in the table: write those back first
        -- and read them again at the next charge, so both views never disagree.
        IF v_lot_id IS NOT NULL AND EXISTS (
             SELECT 1 FROM credit_transactions t
              WHERE t.usage_record_id = r.id AND t.type IN ('charge', 'capture') AND NOT (t.allocation_id = ANY (v_lot_id))) THEN
          FOR j IN 1 .. coalesce(array_length(v_lot_id, 1), 0) LOOP
            IF v_lot_left[j] <> v_lot_orig[j] THEN
              UPDATE credit_allocations SET remaining_credits = v_lot_left[j] WHERE id = v_lot_id[j];
            END IF;
          END LOOP;
          v_lot_id := NULL;
        END IF;
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
          ELSIF v_lot_id IS NOT NULL THEN
            -- Every lot that paid this record is among those in memory (checked above).
            j := array_position(v_lot_id, leg.id);
            v_lot_left[j] := v_lot_left[j] + least(leg.left_to_return, v_take);
            v_avail := v_avail + least(leg.left_to_return, v_take);
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
    v_ids := v_ids || r.id;
    v_dcredits := v_dcredits || v_diff;
    v_dunpaid := v_dunpaid || CASE WHEN v_diff > 0 THEN v_diff - v_pay ELSE -v_forgive END;
  END LOOP;

  -- Flush: each lot drawn in memory, and each rollup row, written once.
  IF v_lot_id IS NOT NULL THEN
    FOR j IN 1 .. coalesce(array_length(v_lot_id, 1), 0) LOOP
      IF v_lot_left[j] <> v_lot_orig[j] THEN
        UPDATE credit_allocations SET remaining_credits = v_lot_left[j] WHERE id = v_lot_id[j];
      END IF;
    END LOOP;
  END IF;
  UPDATE usage_daily d
     SET credits = d.credits + x.dcredits, unpaid_credits = d.unpaid_credits + x.dunpaid
    FROM (SELECT u.user_id, (u.created_at AT TIME ZONE 'UTC')::date AS day, u.service, u.operation,
                 coalesce(u.model_id, '') AS model_id, sum(t.dcredits) AS dcredits, sum(t.dunpaid) AS dunpaid
            FROM unnest(v_ids, v_dcredits, v_dunpaid) AS t(id, dcredits, dunpaid)
            JOIN usage_records u ON u.id = t.id
           GROUP BY 1, 2, 3, 4, 5) x
   WHERE d.user_id = x.user_id AND d.day = x.day AND d.service = x.service AND d.operation = x.operation
     AND d.model_id = x.model_id AND (x.dcredits <> 0 OR x.dunpaid <> 0);
  IF records > 0 THEN
    PERFORM acct_event_balance(p_user);
  END IF;
  RETURN NEXT;
END $$;
