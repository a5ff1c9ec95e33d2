-- acct_budget_open_admit: the budget half of opening a session, before credits are drawn (issue 14,
-- docs/budgets.md), at p_at: acct_budget_open_lock on the user's stored org (locks or creates each counter
-- row, in id order), then acct_budget_open_decide (raises P0B01, BUDGET_EXCEEDED, when spent + held +
-- p_amount would pass a limit). Returns what acct_budget_hold needs after the draw, in budget id order: the
-- budgets, their limits and their period starts. acct_session_open runs the same two functions itself (the
-- lock before the user row, the decision after it) and calls this one only when the user's org changed in
-- between; the budget property test calls it at chosen times.
CREATE OR REPLACE FUNCTION acct_budget_open_admit(
  p_user text, p_model text, p_amount bigint, p_at timestamptz,
  OUT budget_ids bigint[], OUT limits bigint[], OUT period_starts timestamptz[]
) LANGUAGE plpgsql AS $$
DECLARE
  v_used bigint[];
BEGIN
  SELECT l.budget_ids, l.limits, l.period_starts, l.used INTO budget_ids, limits, period_starts, v_used
    FROM acct_budget_open_lock(p_user, (SELECT org_id FROM user_accounts WHERE id = p_user), p_model, p_at) l;
  PERFORM acct_budget_open_decide(p_amount, budget_ids, limits, period_starts, v_used);
END $$;
