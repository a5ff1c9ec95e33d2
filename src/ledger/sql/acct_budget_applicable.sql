-- acct_budget_applicable: first created for budgets (issue 14, docs/budgets.md).
-- The budgets that apply to spend by p_user (member of p_org, may be NULL) on p_model (NULL: no model, so
-- only budgets without a model apply): the user's own and the org's, all models or this one.
CREATE OR REPLACE FUNCTION acct_budget_applicable(p_user text, p_org text, p_model text)
RETURNS SETOF budgets LANGUAGE sql STABLE AS $$
  SELECT * FROM budgets b
   WHERE (b.user_id = p_user OR (p_org IS NOT NULL AND b.org_id = p_org))
     AND (b.model_id IS NULL OR b.model_id = p_model)
$$;
