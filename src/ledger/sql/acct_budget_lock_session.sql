-- acct_budget_lock_session: first created for budgets (issue 14, docs/budgets.md).
-- The lock order's first level for settling a session: the counter rows its hold touched, in (budget id,
-- period) order, before the user's row.
CREATE OR REPLACE FUNCTION acct_budget_lock_session(p_user text, p_session text)
RETURNS void LANGUAGE sql AS $$
  SELECT 1 FROM budget_counters k
   WHERE (k.budget_id, k.period_start) IN (SELECT budget_id, period_start FROM budget_charges
                                             WHERE user_id = p_user AND session_id = p_session)
   ORDER BY k.budget_id, k.period_start
     FOR UPDATE OF k
$$;
