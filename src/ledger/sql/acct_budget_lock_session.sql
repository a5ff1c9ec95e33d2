-- acct_budget_lock_session: first created for budgets (issue 14, docs/budgets.md).
-- The lock order's first level for settling a session: the counter rows its hold touched, in (budget id,
-- period) order, before the user's row.
-- PL/pgSQL, not SQL (issue 19): a SQL function with FOR UPDATE is never inlined, and PostgreSQL planned its
-- query again at every settle (about 0.18 ms even with no budget at all); PL/pgSQL keeps the plan for the
-- connection. PERFORM runs the query to its end, so every row it selects is locked.
CREATE OR REPLACE FUNCTION acct_budget_lock_session(p_user text, p_session text)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  PERFORM 1 FROM budget_counters k
   WHERE (k.budget_id, k.period_start) IN (SELECT budget_id, period_start FROM budget_charges
                                             WHERE user_id = p_user AND session_id = p_session)
   ORDER BY k.budget_id, k.period_start
     FOR UPDATE OF k;
END $$;
