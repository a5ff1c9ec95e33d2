-- acct_budget_charge: first created for budgets (issue 14, docs/budgets.md).
-- Counts a usage record's cost as spent in the period of p_at (when the usage happened) of every budget
-- that applies. p_enforce (a user recording their own usage): first refuse when a budget would be exceeded
-- (acct_budget_admit raises, rolling back the record too). Records by a supervisor/admin are never refused.
-- Announces budget.threshold when the spend reaches 80% / 100% of a limit (acct_budget_threshold).
CREATE OR REPLACE FUNCTION acct_budget_charge(p_user text, p_record bigint, p_model text, p_amount bigint,
                                              p_at timestamptz, p_enforce boolean)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  b record;
  v_start timestamptz;
  v_used bigint;
  v_level smallint;
BEGIN
  IF p_enforce THEN
    PERFORM acct_budget_admit(p_user, p_model, p_amount, p_at);
  END IF;
  FOR b IN SELECT * FROM acct_budget_applicable(p_user, (SELECT org_id FROM user_accounts WHERE id = p_user), p_model)
           ORDER BY id LOOP
    v_start := acct_budget_period_start(b.period, b.timezone, p_at);
    CONTINUE WHEN NOT acct_budget_counter(b.id, v_start);
    UPDATE budget_counters SET spent_credits = spent_credits + p_amount WHERE budget_id = b.id AND period_start = v_start
    RETURNING spent_credits + held_credits, threshold_level INTO v_used, v_level;
    INSERT INTO budget_charges (budget_id, period_start, user_id, usage_record_id, spent_credits)
    VALUES (b.id, v_start, p_user, p_record, p_amount);
    IF v_level < 100 AND v_used > 0 AND v_used::numeric * 5 >= b.limit_credits::numeric * 4 THEN
      PERFORM acct_budget_threshold(p_user, b.id, v_start);  -- budget.threshold at 80% / 100%
    END IF;
  END LOOP;
END $$;
