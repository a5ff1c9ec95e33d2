-- acct_budget_refund_record: first created for budgets (issue 14, docs/budgets.md).
-- A refund of p_amount on a usage record takes it off the spend of every budget the record counted in, in
-- the period it counted in (never below what the record added). Call acct_budget_lock_record first,
-- before the user's row.
CREATE OR REPLACE FUNCTION acct_budget_refund_record(p_record bigint, p_amount bigint)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  c record;
  v_back bigint;
BEGIN
  FOR c IN SELECT id, budget_id, period_start, spent_credits FROM budget_charges
            WHERE usage_record_id = p_record ORDER BY budget_id, period_start LOOP
    v_back := least(p_amount, c.spent_credits);
    UPDATE budget_counters SET spent_credits = spent_credits - v_back
     WHERE budget_id = c.budget_id AND period_start = c.period_start;
    UPDATE budget_charges SET spent_credits = spent_credits - v_back WHERE id = c.id;
  END LOOP;
END $$;
