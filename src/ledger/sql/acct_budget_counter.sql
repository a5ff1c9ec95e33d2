-- acct_budget_counter: first created for budgets (issue 14, docs/budgets.md).
-- Locks the counter row of (p_budget, p_start), creating it on first use (a new period starts at zero by
-- the clock alone: no reset job). Returns false when the budget was deleted meanwhile.
CREATE OR REPLACE FUNCTION acct_budget_counter(p_budget bigint, p_start timestamptz)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  PERFORM 1 FROM budget_counters WHERE budget_id = p_budget AND period_start = p_start FOR UPDATE;
  IF FOUND THEN
    RETURN true;
  END IF;
  BEGIN
    INSERT INTO budget_counters (budget_id, period_start) VALUES (p_budget, p_start) ON CONFLICT DO NOTHING;
  EXCEPTION WHEN foreign_key_violation THEN
    RETURN false;
  END;
  PERFORM 1 FROM budget_counters WHERE budget_id = p_budget AND period_start = p_start FOR UPDATE;
  RETURN FOUND;
END $$;
