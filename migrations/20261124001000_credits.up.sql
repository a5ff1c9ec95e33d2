-- Credits: one-round-trip debit, allocation, lot expiry and the reconcile check.
-- Lock order as everywhere: the user's user_accounts row first, then lots in consumption order.

-- What a ledger row did to its lot's remaining_credits (the convention of the initial schema):
-- grant/release add, hold/charge/expire subtract, capture leaves it (held -> spent), adjust is signed.
CREATE FUNCTION acct_signed_amount(p_type text, p_amount bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE p_type
           WHEN 'grant' THEN p_amount
           WHEN 'release' THEN p_amount
           WHEN 'adjust' THEN p_amount
           WHEN 'hold' THEN -p_amount
           WHEN 'charge' THEN -p_amount
           WHEN 'expire' THEN -p_amount
           ELSE 0
         END
$$;

-- Locks the user, then draws p_amount ('charge' or 'hold') from live lots. All or nothing unless
-- p_allow_partial (then it draws what is available). Returns what was drawn and what was available before;
-- drawn = 0 with available_before < p_amount means "insufficient, nothing changed".
-- Callers inside a larger transaction may already hold the user lock; taking it again is a no-op.
CREATE FUNCTION acct_debit(p_user text, p_amount bigint, p_kind text, p_allow_partial boolean,
                           p_session text, p_usage_record bigint, p_actor text)
RETURNS TABLE (drawn bigint, available_before bigint) LANGUAGE plpgsql AS $$
DECLARE
  available bigint;
BEGIN
  IF p_amount < 0 THEN
    RAISE EXCEPTION 'acct_debit: negative amount %', p_amount;
  END IF;
  PERFORM 1 FROM user_accounts WHERE id = p_user FOR UPDATE;
  available := acct_available(p_user);
  IF available >= p_amount OR p_allow_partial THEN
    drawn := acct_draw(p_user, least(p_amount, available), p_kind, p_session, p_usage_record, p_actor);
  ELSE
    drawn := 0;
  END IF;
  available_before := available;
  RETURN NEXT;
END $$;

-- Creates the user if unknown, locks it, and adds a lot with its grant row. Expiry is an absolute time
-- or a number of days from now (database time), or neither (never expires).
CREATE FUNCTION acct_allocate(p_user text, p_amount bigint, p_expires_at timestamptz, p_expires_in_days integer,
                              p_actor text, p_note text)
RETURNS SETOF credit_allocations LANGUAGE plpgsql AS $$
DECLARE
  new_id bigint;
BEGIN
  INSERT INTO user_accounts (id) VALUES (p_user) ON CONFLICT (id) DO NOTHING;
  PERFORM 1 FROM user_accounts WHERE id = p_user FOR UPDATE;
  new_id := acct_grant(p_user, p_amount,
                       coalesce(p_expires_at, now() + make_interval(days => p_expires_in_days)), p_actor, p_note);
  RETURN QUERY SELECT * FROM credit_allocations WHERE id = new_id;
END $$;

-- Expires ONE lot past its expiry that still has credits: claims its user row with SKIP LOCKED (so many
-- instances can sweep at once and a user busy with a request is simply skipped until the next call),
-- then locks the lot, writes an 'expire' row for what is left and zeroes it. Returns no row when there is
-- nothing (claimable) to do. p_not_before bounds the scan to lots that expired since then (NULL: all),
-- so a regular sweep does not walk every lot that ever expired.
CREATE FUNCTION acct_expire_one_lot(p_not_before timestamptz DEFAULT NULL)
RETURNS TABLE (expired_allocation_id bigint, expired_user_id text, expired_credits bigint)
LANGUAGE plpgsql AS $$
DECLARE
  claimed record;
  left_over bigint;
BEGIN
  SELECT a.id, a.user_id INTO claimed
    FROM credit_allocations a JOIN user_accounts u ON u.id = a.user_id
   WHERE a.expires_at <= now() AND a.remaining_credits > 0
     AND (p_not_before IS NULL OR a.expires_at >= p_not_before)
   ORDER BY a.expires_at, a.id
   LIMIT 1
     FOR UPDATE OF u SKIP LOCKED;
  IF NOT FOUND THEN
    RETURN;
  END IF;
  -- The lot row was read before the user lock was granted: re-read it under its own lock.
  SELECT remaining_credits INTO left_over FROM credit_allocations WHERE id = claimed.id FOR UPDATE;
  IF left_over > 0 THEN
    UPDATE credit_allocations SET remaining_credits = 0 WHERE id = claimed.id;
    INSERT INTO credit_transactions (user_id, type, amount, allocation_id, actor_id, note)
    VALUES (claimed.user_id, 'expire', left_over, claimed.id, 'system', 'allocation expired');
  END IF;
  expired_allocation_id := claimed.id;
  expired_user_id := claimed.user_id;
  expired_credits := left_over;
  RETURN NEXT;
END $$;

-- Recomputes every lot (and every hold leg) from the ledger and returns each difference.
--   remaining        lot.remaining_credits = Σ signed ledger amounts of the lot
--   total            lot.total_credits     = Σ grant rows of the lot
--   held             Σ(held - captured - released) of the lot's legs in ACTIVE sessions
--                    = Σhold - Σrelease - Σcapture in the ledger for the lot
--   negative_*       the lot's remaining / held, replayed in ledger order, never dips below zero
--   leg_held|captured|released   each session_holds leg matches the ledger rows of its session and lot
--   leg_unresolved   a leg of a session that is no longer active is fully captured + released
--   foreign_entries  ledger rows of a lot written under another user
-- expected is what the ledger (or the rule) says; actual is what is stored.
CREATE FUNCTION acct_reconcile()
RETURNS TABLE (user_id text, allocation_id bigint, session_id text, kind text, expected bigint, actual bigint)
LANGUAGE sql STABLE AS $$
  WITH entries AS (
    SELECT t.user_id, t.allocation_id, t.type, t.amount,
           sum(acct_signed_amount(t.type, t.amount)) OVER w AS running_remaining,
           sum(CASE t.type WHEN 'hold' THEN t.amount WHEN 'release' THEN -t.amount WHEN 'capture' THEN -t.amount ELSE 0 END)
             OVER w AS running_held
      FROM credit_transactions t
     WHERE t.allocation_id IS NOT NULL
    WINDOW w AS (PARTITION BY t.allocation_id ORDER BY t.id)
  ),
  ledger AS (
    SELECT e.allocation_id,
           sum(acct_signed_amount(e.type, e.amount)) AS remaining,
           coalesce(sum(e.amount) FILTER (WHERE e.type = 'grant'), 0) AS granted,
           coalesce(sum(CASE e.type WHEN 'hold' THEN e.amount WHEN 'release' THEN -e.amount WHEN 'capture' THEN -e.amount ELSE 0 END), 0) AS held,
           min(e.running_remaining) AS min_remaining,
           min(e.running_held) AS min_held
      FROM entries e
     GROUP BY e.allocation_id
  ),
  active_held AS (
    SELECT h.allocation_id, sum(h.held_credits - h.captured_credits - h.released_credits) AS held
      FROM session_holds h JOIN streaming_sessions s ON s.id = h.session_id
     WHERE s.status = 'active'
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
  ),
  leg_ledger AS (
    SELECT t.session_id, t.allocation_id,
           coalesce(sum(t.amount) FILTER (WHERE t.type = 'hold'), 0) AS held,
           coalesce(sum(t.amount) FILTER (WHERE t.type = 'capture'), 0) AS captured,
           coalesce(sum(t.amount) FILTER (WHERE t.type = 'release'), 0) AS released
      FROM credit_transactions t
     WHERE t.session_id IS NOT NULL AND t.allocation_id IS NOT NULL AND t.type IN ('hold', 'capture', 'release')
     GROUP BY t.session_id, t.allocation_id
  ),
  legs AS (
    SELECT coalesce(h.session_id, g.session_id) AS session_id, coalesce(h.allocation_id, g.allocation_id) AS allocation_id,
           h.user_id, s.status,
           coalesce(h.held_credits, 0) AS held, coalesce(h.captured_credits, 0) AS captured,
           coalesce(h.released_credits, 0) AS released,
           coalesce(g.held, 0) AS ledger_held, coalesce(g.captured, 0) AS ledger_captured,
           coalesce(g.released, 0) AS ledger_released
      FROM session_holds h
      FULL JOIN leg_ledger g ON g.session_id = h.session_id AND g.allocation_id = h.allocation_id
      LEFT JOIN streaming_sessions s ON s.id = coalesce(h.session_id, g.session_id)
  ),
  lot_user AS (
    SELECT id, user_id FROM credit_allocations
  )
  SELECT user_id, id, NULL::text, 'remaining', ledger_remaining, remaining_credits FROM lots WHERE ledger_remaining <> remaining_credits
  UNION ALL
  SELECT user_id, id, NULL, 'total', ledger_granted, total_credits FROM lots WHERE ledger_granted <> total_credits
  UNION ALL
  SELECT user_id, id, NULL, 'held', ledger_held, active_held FROM lots WHERE ledger_held <> active_held
  UNION ALL
  SELECT user_id, id, NULL, 'negative_remaining', 0, min_remaining FROM lots WHERE min_remaining < 0
  UNION ALL
  SELECT user_id, id, NULL, 'negative_held', 0, min_held FROM lots WHERE min_held < 0
  UNION ALL
  SELECT coalesce(g.user_id, u.user_id), g.allocation_id, g.session_id, 'leg_held', g.ledger_held, g.held
    FROM legs g LEFT JOIN lot_user u ON u.id = g.allocation_id WHERE g.ledger_held <> g.held
  UNION ALL
  SELECT coalesce(g.user_id, u.user_id), g.allocation_id, g.session_id, 'leg_captured', g.ledger_captured, g.captured
    FROM legs g LEFT JOIN lot_user u ON u.id = g.allocation_id WHERE g.ledger_captured <> g.captured
  UNION ALL
  SELECT coalesce(g.user_id, u.user_id), g.allocation_id, g.session_id, 'leg_released', g.ledger_released, g.released
    FROM legs g LEFT JOIN lot_user u ON u.id = g.allocation_id WHERE g.ledger_released <> g.released
  UNION ALL
  SELECT g.user_id, g.allocation_id, g.session_id, 'leg_unresolved', g.held, g.captured + g.released
    FROM legs g WHERE g.status IS DISTINCT FROM 'active' AND g.user_id IS NOT NULL AND g.captured + g.released <> g.held
  UNION ALL
  SELECT a.user_id, a.id, NULL, 'foreign_entries', 0, count(*)
    FROM credit_transactions t JOIN credit_allocations a ON a.id = t.allocation_id
   WHERE t.user_id <> a.user_id
   GROUP BY a.user_id, a.id
$$;

-- Reserved credits per user (GET /api/credits/balance) read only the user's active sessions.
CREATE INDEX streaming_sessions_active_user ON streaming_sessions (user_id) WHERE status = 'active';
