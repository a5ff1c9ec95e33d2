-- acct_budget_details: first created for budgets (issue 14, docs/budgets.md).
-- The BUDGET_EXCEEDED details (and budget.threshold payload base) of budget p_budget in the period starting
-- at p_start, with the counter's spent and held (amounts in micro-credits, as text).
CREATE OR REPLACE FUNCTION acct_budget_details(p_budget budgets, p_start timestamptz, p_spent bigint, p_held bigint)
RETURNS jsonb LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object(
    'budgetId', p_budget.id::text,
    'scope', CASE WHEN p_budget.user_id IS NOT NULL THEN jsonb_build_object('userId', p_budget.user_id)
                  ELSE jsonb_build_object('orgId', p_budget.org_id) END,
    'period', p_budget.period,
    'modelId', p_budget.model_id,
    'limitCredits', p_budget.limit_credits::text,
    'spentCredits', p_spent::text,
    'heldCredits', p_held::text,
    'periodStart', p_start,
    'resetsAt', acct_budget_period_end(p_budget.period, p_budget.timezone, p_start))
$$;
