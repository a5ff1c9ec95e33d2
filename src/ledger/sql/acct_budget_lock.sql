-- acct_budget_lock: first created for budgets (issue 14, docs/budgets.md).
-- The first level of the lock order: the counter rows (current period at p_at) of every budget that applies
-- to p_user on p_model, org's and user's, in budget id order, BEFORE the user's row. p_org is the org the
-- caller's token names (it wins); NULL reads the stored one. A user without budgets locks nothing.
CREATE OR REPLACE FUNCTION acct_budget_lock(p_user text, p_org text, p_model text, p_at timestamptz)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  b record;
  v_org text := p_org;
BEGIN
  IF v_org IS NULL THEN
    SELECT org_id INTO v_org FROM user_accounts WHERE id = p_user;
  END IF;
  FOR b IN SELECT id, acct_budget_period_start(period, timezone, p_at) AS period_start
             FROM acct_budget_applicable(p_user, v_org, p_model) ORDER BY id LOOP
    -- The period's row usually exists: lock it; else create it first (acct_budget_counter).
    PERFORM 1 FROM budget_counters WHERE budget_id = b.id AND period_start = b.period_start FOR UPDATE;
    IF NOT FOUND THEN
      PERFORM acct_budget_counter(b.id, b.period_start);
    END IF;
  END LOOP;
END $$;
