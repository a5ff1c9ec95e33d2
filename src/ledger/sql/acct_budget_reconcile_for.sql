-- acct_budget_reconcile_for: first created for incremental reconcile (issue 18). The checks of
-- acct_budget_reconcile (keep the two in step), restricted to the counters of the given budgets, of the
-- budgets the given users own, and of every budget those users have a charge in; and to the users' charges
-- (and the given budgets' charges) for holds left on sessions that are no longer active.
DROP FUNCTION IF EXISTS acct_budget_reconcile_for(text[], bigint[]);
CREATE OR REPLACE FUNCTION acct_budget_reconcile_for(p_users text[], p_budgets bigint[])
RETURNS TABLE (budget_id bigint, period_start timestamptz, session_id text, kind text, expected bigint, actual bigint)
LANGUAGE sql STABLE AS $$
  WITH b AS MATERIALIZED (
    SELECT ARRAY(SELECT unnest(coalesce(p_budgets, '{}'::bigint[]))
                 UNION SELECT c.budget_id FROM budget_charges c WHERE c.user_id = ANY(p_users)
                 UNION SELECT g.id FROM budgets g WHERE g.user_id = ANY(p_users)) AS ids
  ),
  sums AS (
    SELECT k.budget_id, k.period_start, k.spent_credits, k.held_credits,
           coalesce(sum(c.spent_credits), 0)::bigint AS spent, coalesce(sum(c.held_credits), 0)::bigint AS held
      FROM budget_counters k LEFT JOIN budget_charges c ON c.budget_id = k.budget_id AND c.period_start = k.period_start
     WHERE k.budget_id = ANY((SELECT ids FROM b)::bigint[])
     GROUP BY k.budget_id, k.period_start, k.spent_credits, k.held_credits
  )
  SELECT s.budget_id, s.period_start, NULL::text, 'budget_spent', s.spent, s.spent_credits FROM sums s WHERE s.spent <> s.spent_credits
  UNION ALL
  SELECT s.budget_id, s.period_start, NULL::text, 'budget_held', s.held, s.held_credits FROM sums s WHERE s.held <> s.held_credits
  UNION ALL
  SELECT c.budget_id, c.period_start, c.session_id, 'budget_held_after_end', 0::bigint, c.held_credits
    FROM budget_charges c
   WHERE c.held_credits > 0
     AND (c.user_id = ANY(p_users) OR c.budget_id = ANY((SELECT ids FROM b)::bigint[]))
     AND NOT EXISTS (SELECT 1 FROM streaming_sessions s
                      WHERE s.id = c.session_id AND s.user_id = c.user_id AND s.status = 'active')
$$;
