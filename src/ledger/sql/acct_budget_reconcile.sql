-- acct_budget_reconcile: first created for budgets (issue 14, docs/budgets.md).
-- Every budget counter against the charges that built it: spent = sum of what sessions and records spent
-- in that period, held = sum of what sessions still hold; a hold left on a session that is no longer
-- active is reported too. Returns one row per difference (amounts in micro-credits).
CREATE OR REPLACE FUNCTION acct_budget_reconcile()
RETURNS TABLE (budget_id bigint, period_start timestamptz, session_id text, kind text, expected bigint, actual bigint)
LANGUAGE sql STABLE AS $$
  WITH sums AS (
    SELECT k.budget_id, k.period_start, k.spent_credits, k.held_credits,
           coalesce(sum(c.spent_credits), 0)::bigint AS spent, coalesce(sum(c.held_credits), 0)::bigint AS held
      FROM budget_counters k LEFT JOIN budget_charges c ON c.budget_id = k.budget_id AND c.period_start = k.period_start
     GROUP BY k.budget_id, k.period_start, k.spent_credits, k.held_credits
  )
  SELECT s.budget_id, s.period_start, NULL::text, 'budget_spent', s.spent, s.spent_credits FROM sums s WHERE s.spent <> s.spent_credits
  UNION ALL
  SELECT s.budget_id, s.period_start, NULL::text, 'budget_held', s.held, s.held_credits FROM sums s WHERE s.held <> s.held_credits
  UNION ALL
  SELECT c.budget_id, c.period_start, c.session_id, 'budget_held_after_end', 0::bigint, c.held_credits
    FROM budget_charges c
   WHERE c.held_credits > 0
     AND NOT EXISTS (SELECT 1 FROM streaming_sessions s
                      WHERE s.id = c.session_id AND s.user_id = c.user_id AND s.status = 'active')
$$;
