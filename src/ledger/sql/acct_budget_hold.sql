-- acct_budget_hold: first created for budgets (issue 14, docs/budgets.md).
-- Adds a new session's hold to the counters (period at p_at) of every budget that applies, and remembers
-- per budget what the session holds (budget_charges), so its capture, release or expiry later updates the
-- same period's row. Call after acct_budget_admit, in the same statement. Announces budget.threshold when
-- the hold reaches 80% / 100% of a limit (acct_budget_threshold).
CREATE OR REPLACE FUNCTION acct_budget_hold(p_user text, p_session text, p_model text, p_amount bigint, p_at timestamptz)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  b record;
  v_start timestamptz;
  v_used bigint;
  v_level smallint;
BEGIN
  FOR b IN SELECT * FROM acct_budget_applicable(p_user, (SELECT org_id FROM user_accounts WHERE id = p_user), p_model)
           ORDER BY id LOOP
    v_start := acct_budget_period_start(b.period, b.timezone, p_at);
    CONTINUE WHEN NOT acct_budget_counter(b.id, v_start);
    UPDATE budget_counters SET held_credits = held_credits + p_amount WHERE budget_id = b.id AND period_start = v_start
    RETURNING spent_credits + held_credits, threshold_level INTO v_used, v_level;
    INSERT INTO budget_charges (budget_id, period_start, user_id, session_id, held_credits)
    VALUES (b.id, v_start, p_user, p_session, p_amount);
    IF v_level < 100 AND v_used > 0 AND v_used::numeric * 5 >= b.limit_credits::numeric * 4 THEN
      PERFORM acct_budget_threshold(p_user, b.id, v_start);  -- budget.threshold at 80% / 100%
    END IF;
  END LOOP;
END $$;
