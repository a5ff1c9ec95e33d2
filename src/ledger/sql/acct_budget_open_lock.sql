-- acct_budget_open_lock: the first half of opening a session under budgets (issue 14, docs/budgets.md).
-- The lock order's first level for an initialize, and the reads its decision needs, in one pass: the budgets
-- that apply to p_user (member of p_org, may be NULL) on p_model, and the counter row of each for its period
-- at p_at, locked (or created on the period's first use, acct_budget_counter) one by one in budget id order,
-- BEFORE the user's row. Returns, in budget id order, the budgets, their limits, their period starts and
-- what each counter counts (spent + held) as locked: these rows stay locked until the transaction ends, so
-- acct_budget_open_decide decides on them after the user row is locked and acct_budget_hold adds to them.
-- A budget deleted meanwhile drops out.
CREATE OR REPLACE FUNCTION acct_budget_open_lock(
  p_user text, p_org text, p_model text, p_at timestamptz,
  OUT budget_ids bigint[], OUT limits bigint[], OUT period_starts timestamptz[], OUT used bigint[]
) LANGUAGE plpgsql AS $$
DECLARE
  b record;
  v_used bigint;
BEGIN
  budget_ids := '{}';
  limits := '{}';
  period_starts := '{}';
  used := '{}';
  FOR b IN SELECT id, limit_credits, acct_budget_period_start(period, timezone, p_at) AS period_start
             FROM acct_budget_applicable(p_user, p_org, p_model) ORDER BY id LOOP
    SELECT spent_credits + held_credits INTO v_used
      FROM budget_counters WHERE budget_id = b.id AND period_start = b.period_start FOR UPDATE;
    IF NOT FOUND THEN
      -- No row yet: create and lock it, or skip a budget deleted meanwhile.
      CONTINUE WHEN NOT acct_budget_counter(b.id, b.period_start);
      v_used := 0;
    END IF;
    budget_ids := budget_ids || b.id;
    limits := limits || b.limit_credits;
    period_starts := period_starts || b.period_start;
    used := used || v_used;
  END LOOP;
END $$;
