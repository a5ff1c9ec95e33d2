-- acct_budget_lock_record: first created for budgets (issue 14, docs/budgets.md).
-- The lock order's first level for correcting a usage record (refund): the counter rows the record's
-- spend counted in, in (budget id, period) order, before the user's row.
CREATE OR REPLACE FUNCTION acct_budget_lock_record(p_record bigint)
RETURNS void LANGUAGE sql AS $$
  SELECT 1 FROM budget_counters k
   WHERE (k.budget_id, k.period_start) IN (SELECT budget_id, period_start FROM budget_charges WHERE usage_record_id = p_record)
   ORDER BY k.budget_id, k.period_start
     FOR UPDATE OF k
$$;
