-- acct_budget_lock_record: first created for budgets (issue 14, docs/budgets.md).
-- The lock order's first level for correcting a usage record (refund): the counter rows the record's
-- spend counted in, in (budget id, period) order, before the user's row. A streaming session's record
-- counted through its session's charges (the period of the session's initialize); a recorded usage's
-- through its own (the period of its occurredAt).
CREATE OR REPLACE FUNCTION acct_budget_lock_record(p_record bigint)
RETURNS void LANGUAGE sql AS $$
  SELECT 1 FROM budget_counters k
   WHERE (k.budget_id, k.period_start) IN (
           SELECT c.budget_id, c.period_start FROM budget_charges c WHERE c.usage_record_id = p_record
           UNION ALL
           SELECT c.budget_id, c.period_start FROM budget_charges c JOIN usage_records u
               ON u.id = p_record AND u.session_id IS NOT NULL AND c.user_id = u.user_id AND c.session_id = u.session_id)
   ORDER BY k.budget_id, k.period_start
     FOR UPDATE OF k
$$;
