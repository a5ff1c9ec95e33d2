-- acct_budget_refusal: first created for budgets (issue 14, docs/budgets.md).
-- The first budget (id order) that p_amount more would exceed in its period at p_at (spent + held + amount
-- > limit), as the BUDGET_EXCEEDED details (amounts in micro-credits, as text), or NULL when all pass.
-- p_lock: lock (and create) the counters first, for decisions that hold or spend; false for check's read.
CREATE OR REPLACE FUNCTION acct_budget_refusal(p_user text, p_org text, p_model text, p_amount bigint,
                                               p_at timestamptz, p_lock boolean)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  b budgets%ROWTYPE;
  v_start timestamptz;
  v_spent bigint;
  v_held bigint;
BEGIN
  FOR b IN SELECT * FROM acct_budget_applicable(p_user, p_org, p_model) ORDER BY id LOOP
    v_start := acct_budget_period_start(b.period, b.timezone, p_at);
    IF p_lock THEN
      CONTINUE WHEN NOT acct_budget_counter(b.id, v_start);
    END IF;
    SELECT spent_credits, held_credits INTO v_spent, v_held
      FROM budget_counters WHERE budget_id = b.id AND period_start = v_start;
    v_spent := coalesce(v_spent, 0);
    v_held := coalesce(v_held, 0);
    IF v_spent + v_held + p_amount > b.limit_credits THEN
      RETURN acct_budget_details(b, v_start, v_spent, v_held);
    END IF;
  END LOOP;
  RETURN NULL;
END $$;
