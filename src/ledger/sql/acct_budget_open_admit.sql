-- acct_budget_open_admit: the budget half of opening a session, before credits are drawn (issue 14,
-- docs/budgets.md). acct_session_open calls it with now(); the budget property test calls the same code at
-- chosen times. Reads the budgets that apply to p_user on p_model and their periods at p_at once, locks (or
-- creates) each counter row, and raises P0B01 (BUDGET_EXCEEDED, details as acct_budget_details) when
-- spent + held + p_amount would pass a limit. Returns what acct_budget_hold needs after the draw, in budget
-- id order: the budgets, their limits and their period starts. The caller holds the lock order (counters,
-- then the user row): acct_budget_lock has taken these rows already, so FOR UPDATE here costs nothing, and
-- it also covers a counter that was not (the org changed in between).
CREATE OR REPLACE FUNCTION acct_budget_open_admit(
  p_user text, p_model text, p_amount bigint, p_at timestamptz,
  OUT budget_ids bigint[], OUT limits bigint[], OUT period_starts timestamptz[]
) LANGUAGE plpgsql AS $$
DECLARE
  b budgets;
  v_start timestamptz;
  v_spent bigint;
  v_held bigint;
BEGIN
  budget_ids := '{}';
  limits := '{}';
  period_starts := '{}';
  FOR b IN SELECT * FROM acct_budget_applicable(p_user, (SELECT org_id FROM user_accounts WHERE id = p_user), p_model)
           ORDER BY id LOOP
    v_start := acct_budget_period_start(b.period, b.timezone, p_at);
    SELECT spent_credits, held_credits INTO v_spent, v_held
      FROM budget_counters WHERE budget_id = b.id AND period_start = v_start FOR UPDATE;
    IF NOT FOUND THEN
      -- No row yet: create and lock it, or skip a budget deleted meanwhile.
      CONTINUE WHEN NOT acct_budget_counter(b.id, v_start);
      v_spent := 0;
      v_held := 0;
    END IF;
    IF v_spent + v_held + p_amount > b.limit_credits THEN -- BUDGET_EXCEEDED, all rolled back
      RAISE EXCEPTION 'budget % would be exceeded', b.id
        USING ERRCODE = 'P0B01', DETAIL = acct_budget_details(b, v_start, v_spent, v_held)::text;
    END IF;
    budget_ids := budget_ids || b.id;
    limits := limits || b.limit_credits;
    period_starts := period_starts || v_start;
  END LOOP;
END $$;
