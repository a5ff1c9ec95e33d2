-- acct_reconcile_users: first created for incremental reconcile (issue 18, docs/credits.md "Reconcile").
-- The checks of acct_reconcile (same kinds, same columns, same rules: keep the two in step), restricted to
-- what the given users can touch: their lots and the lots their ledger rows name, their hold legs and the
-- legs on those lots, their usage records and the records their ledger rows name. A difference is reported
-- under the user the lot, leg or record belongs to (a ledger row written under another user is seen through
-- the writer as well as the owner). Every table is reached by index (user, lot, record, session keys), so the
-- cost follows the users' own rows, not the ledger's size.
DROP FUNCTION IF EXISTS acct_reconcile_users(text[]);
CREATE OR REPLACE FUNCTION acct_reconcile_users(p_users text[])
RETURNS TABLE (user_id text, allocation_id bigint, session_id text, kind text, expected bigint, actual bigint,
               usage_record_id bigint)
LANGUAGE sql STABLE AS $$
  WITH own AS MATERIALIZED (
    SELECT DISTINCT t.allocation_id, t.usage_record_id FROM credit_transactions t WHERE t.user_id = ANY(p_users)
  ),
  ids AS MATERIALIZED (
    SELECT ARRAY(SELECT a.id FROM credit_allocations a WHERE a.user_id = ANY(p_users)
                 UNION SELECT o.allocation_id FROM own o WHERE o.allocation_id IS NOT NULL) AS lots,
           ARRAY(SELECT r.id FROM usage_records r WHERE r.user_id = ANY(p_users)
                 UNION SELECT o.usage_record_id FROM own o WHERE o.usage_record_id IS NOT NULL) AS records
  ),
  -- The same as sets, for filters on rows already read (IN a hashed set, where = ANY(array) would compare each
  -- row with every element).
  lot_set AS MATERIALIZED (SELECT unnest(ids.lots) AS id FROM ids),
  user_set AS MATERIALIZED (SELECT DISTINCT unnest(p_users) AS id),
  -- Every ledger row any check below reads: by writer, by lot, by record (= ANY here is an index condition).
  rel AS MATERIALIZED (
    SELECT t.id, t.user_id, t.allocation_id, t.session_id, t.usage_record_id, t.type, t.amount, t.origin_allocation_id
      FROM credit_transactions t
     WHERE t.user_id = ANY(p_users)
        OR t.allocation_id = ANY((SELECT lots FROM ids)::bigint[])
        OR t.usage_record_id = ANY((SELECT records FROM ids)::bigint[])
  ),
  entries AS (
    SELECT t.user_id, t.allocation_id, t.type, t.amount, t.origin_allocation_id,
           row_number() OVER w AS nth,
           sum(acct_signed_amount(t.type, t.amount)) OVER w AS running_remaining,
           sum(CASE t.type WHEN 'hold' THEN t.amount WHEN 'release' THEN -t.amount WHEN 'capture' THEN -t.amount ELSE 0 END)
             OVER w AS running_held
      FROM rel t
     WHERE t.allocation_id IN (SELECT id FROM lot_set)
    WINDOW w AS (PARTITION BY t.allocation_id ORDER BY t.id)
  ),
  ledger AS (
    SELECT e.allocation_id,
           sum(acct_signed_amount(e.type, e.amount)) AS remaining,
           coalesce(sum(e.amount) FILTER (WHERE e.type = 'grant'
                                            OR (e.type = 'adjust' AND e.nth = 1 AND e.amount > 0)
                                            OR (e.type = 'refund' AND e.origin_allocation_id IS DISTINCT FROM e.allocation_id)),
                    0) AS granted,
           coalesce(sum(CASE e.type WHEN 'hold' THEN e.amount WHEN 'release' THEN -e.amount WHEN 'capture' THEN -e.amount ELSE 0 END), 0) AS held,
           min(e.running_remaining) AS min_remaining,
           min(e.running_held) AS min_held
      FROM entries e
     GROUP BY e.allocation_id
  ),
  holds AS MATERIALIZED (
    SELECT h.user_id, h.session_id, h.allocation_id, h.held_credits, h.captured_credits, h.released_credits
      FROM session_holds h
     WHERE h.user_id = ANY(p_users) OR h.allocation_id = ANY((SELECT lots FROM ids)::bigint[])
  ),
  active_held AS (
    SELECT h.allocation_id, sum(h.held_credits - h.captured_credits - h.released_credits) AS held
      FROM holds h JOIN streaming_sessions s ON s.user_id = h.user_id AND s.id = h.session_id
     WHERE s.status = 'active' AND h.allocation_id IN (SELECT id FROM lot_set)
     GROUP BY h.allocation_id
  ),
  lots AS (
    SELECT a.id, a.user_id, a.total_credits, a.remaining_credits,
           coalesce(l.remaining, 0) AS ledger_remaining, coalesce(l.granted, 0) AS ledger_granted,
           coalesce(l.held, 0) AS ledger_held, coalesce(ah.held, 0) AS active_held,
           least(coalesce(l.min_remaining, 0), 0) AS min_remaining, least(coalesce(l.min_held, 0), 0) AS min_held
      FROM credit_allocations a
      LEFT JOIN ledger l ON l.allocation_id = a.id
      LEFT JOIN active_held ah ON ah.allocation_id = a.id
     WHERE a.id = ANY((SELECT lots FROM ids)::bigint[])
  ),
  -- A leg is in scope when its user is one of p_users or its lot is one of theirs: the same rule for the
  -- legs and for the ledger rows, so each leg is compared with all of its rows.
  leg_ledger AS (
    SELECT t.user_id, t.session_id, t.allocation_id,
           coalesce(sum(t.amount) FILTER (WHERE t.type = 'hold'), 0) AS held,
           coalesce(sum(t.amount) FILTER (WHERE t.type = 'capture'), 0) AS captured,
           coalesce(sum(t.amount) FILTER (WHERE t.type = 'release'), 0) AS released
      FROM rel t
     WHERE t.session_id IS NOT NULL AND t.allocation_id IS NOT NULL AND t.type IN ('hold', 'capture', 'release')
       AND (t.user_id IN (SELECT id FROM user_set) OR t.allocation_id IN (SELECT id FROM lot_set))
     GROUP BY t.user_id, t.session_id, t.allocation_id
  ),
  legs AS (
    SELECT coalesce(h.session_id, g.session_id) AS session_id, coalesce(h.allocation_id, g.allocation_id) AS allocation_id,
           h.user_id, s.status,
           coalesce(h.held_credits, 0) AS held, coalesce(h.captured_credits, 0) AS captured,
           coalesce(h.released_credits, 0) AS released,
           coalesce(g.held, 0) AS ledger_held, coalesce(g.captured, 0) AS ledger_captured,
           coalesce(g.released, 0) AS ledger_released
      FROM holds h
      FULL JOIN leg_ledger g ON g.user_id = h.user_id AND g.session_id = h.session_id AND g.allocation_id = h.allocation_id
      LEFT JOIN streaming_sessions s ON s.user_id = coalesce(h.user_id, g.user_id) AND s.id = coalesce(h.session_id, g.session_id)
  ),
  lot_user AS (
    SELECT a.id, a.user_id FROM credit_allocations a
     WHERE a.id IN (SELECT l.allocation_id FROM legs l)
  ),
  usage_ledger AS (
    SELECT t.usage_record_id,
           coalesce(sum(CASE WHEN t.type IN ('charge', 'capture') THEN t.amount
                             WHEN t.type = 'refund' THEN -t.amount
                             WHEN t.type = 'adjust' AND t.amount > 0 THEN -t.amount
                             ELSE 0 END), 0) AS paid,
           coalesce(sum(t.amount) FILTER (WHERE t.type IN ('refund', 'forgive')), 0) AS refunded
      FROM rel t
     WHERE t.usage_record_id IS NOT NULL
     GROUP BY t.usage_record_id
  ),
  usage_check AS (
    SELECT r.id, r.user_id, r.session_id, r.charged_credits, r.refunded_credits,
           coalesce(l.paid, 0) AS paid, coalesce(l.refunded, 0) AS refunded
      FROM usage_records r LEFT JOIN usage_ledger l ON l.usage_record_id = r.id
     WHERE r.id = ANY((SELECT records FROM ids)::bigint[])
  )
  SELECT user_id, id, NULL::text, 'remaining', ledger_remaining, remaining_credits, NULL::bigint FROM lots WHERE ledger_remaining <> remaining_credits
  UNION ALL
  SELECT user_id, id, NULL, 'total', ledger_granted, total_credits, NULL::bigint FROM lots WHERE ledger_granted <> total_credits
  UNION ALL
  SELECT user_id, id, NULL, 'held', ledger_held, active_held, NULL::bigint FROM lots WHERE ledger_held <> active_held
  UNION ALL
  SELECT user_id, id, NULL, 'negative_remaining', 0, min_remaining, NULL::bigint FROM lots WHERE min_remaining < 0
  UNION ALL
  SELECT user_id, id, NULL, 'negative_held', 0, min_held, NULL::bigint FROM lots WHERE min_held < 0
  UNION ALL
  SELECT coalesce(g.user_id, u.user_id), g.allocation_id, g.session_id, 'leg_held', g.ledger_held, g.held, NULL::bigint
    FROM legs g LEFT JOIN lot_user u ON u.id = g.allocation_id WHERE g.ledger_held <> g.held
  UNION ALL
  SELECT coalesce(g.user_id, u.user_id), g.allocation_id, g.session_id, 'leg_captured', g.ledger_captured, g.captured, NULL::bigint
    FROM legs g LEFT JOIN lot_user u ON u.id = g.allocation_id WHERE g.ledger_captured <> g.captured
  UNION ALL
  SELECT coalesce(g.user_id, u.user_id), g.allocation_id, g.session_id, 'leg_released', g.ledger_released, g.released, NULL::bigint
    FROM legs g LEFT JOIN lot_user u ON u.id = g.allocation_id WHERE g.ledger_released <> g.released
  UNION ALL
  SELECT g.user_id, g.allocation_id, g.session_id, 'leg_unresolved', g.held, g.captured + g.released, NULL::bigint
    FROM legs g WHERE g.status IS DISTINCT FROM 'active' AND g.user_id IS NOT NULL AND g.captured + g.released <> g.held
  UNION ALL
  SELECT c.user_id, NULL, c.session_id, 'usage_charged', c.paid, c.charged_credits, c.id
    FROM usage_check c WHERE c.paid <> c.charged_credits
  UNION ALL
  SELECT c.user_id, NULL, c.session_id, 'usage_refunded', c.refunded, c.refunded_credits, c.id
    FROM usage_check c WHERE c.refunded <> c.refunded_credits
  UNION ALL
  SELECT a.user_id, a.id, NULL, 'foreign_entries', 0, count(*), NULL::bigint
    FROM rel t JOIN credit_allocations a ON a.id = t.allocation_id
   WHERE t.user_id <> a.user_id AND t.allocation_id IN (SELECT id FROM lot_set)
   GROUP BY a.user_id, a.id
$$;
