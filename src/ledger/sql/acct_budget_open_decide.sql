-- acct_budget_open_decide: the budget decision of opening a session (issue 14, docs/budgets.md), on what
-- acct_budget_open_lock locked and read (the counters cannot have moved since: this transaction holds
-- them). Raises SQLSTATE P0B01 (BUDGET_EXCEEDED, details as acct_budget_details, of the first refusing budget
-- in id order) when spent + held + p_amount would pass a limit, which rolls back the whole statement.
CREATE OR REPLACE FUNCTION acct_budget_open_decide(p_amount bigint, p_budget_ids bigint[], p_limits bigint[],
                                                   p_period_starts timestamptz[], p_used bigint[])
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  b budgets;
  k budget_counters;
BEGIN
  FOR i IN 1 .. coalesce(array_length(p_budget_ids, 1), 0) LOOP
    IF p_used[i] + p_amount > p_limits[i] THEN -- BUDGET_EXCEEDED, all rolled back
      SELECT * INTO b FROM budgets WHERE id = p_budget_ids[i];
      b.limit_credits := p_limits[i];  -- the limit decided on
      SELECT * INTO k FROM budget_counters WHERE budget_id = p_budget_ids[i] AND period_start = p_period_starts[i];
      RAISE EXCEPTION 'budget % would be exceeded', b.id
        USING ERRCODE = 'P0B01', DETAIL = acct_budget_details(b, k.period_start, k.spent_credits, k.held_credits)::text;
    END IF;
  END LOOP;
END $$;
