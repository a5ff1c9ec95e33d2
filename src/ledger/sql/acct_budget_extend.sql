-- acct_budget_extend: first created for budgets (issue 14, docs/budgets.md).
-- A larger hold for an active session (POST /api/streaming-sessions/extend): p_amount more is held on every
-- budget the session's hold counts in, in the period it counts in (the period of its initialize). Refuses
-- first, like acct_budget_admit: when spent + held + p_amount would exceed any of them, raises SQLSTATE P0B01
-- with the BUDGET_EXCEEDED details of the first (budget id order), rolling back the whole statement (the
-- hold stays as it was). Call with acct_budget_lock_session's rows and the user's row locked: with p_apply
-- false to decide (before the credits test), then with p_apply true after the credits are drawn, which adds
-- p_amount to the counters and the session's charges. Announces budget.threshold when the hold reaches
-- 80% / 100% of a limit.
CREATE OR REPLACE FUNCTION acct_budget_extend(p_user text, p_session text, p_amount bigint, p_apply boolean)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  c record;
  b budgets%ROWTYPE;
BEGIN
  IF p_amount <= 0 THEN
    RETURN;
  END IF;
  IF p_apply THEN
    FOR c IN SELECT id, budget_id, period_start FROM budget_charges
              WHERE user_id = p_user AND session_id = p_session ORDER BY budget_id, period_start LOOP
      UPDATE budget_counters SET held_credits = held_credits + p_amount
       WHERE budget_id = c.budget_id AND period_start = c.period_start;
      UPDATE budget_charges SET held_credits = held_credits + p_amount WHERE id = c.id;
      PERFORM acct_budget_threshold(p_user, c.budget_id, c.period_start);
    END LOOP;
    RETURN;
  END IF;
  FOR c IN SELECT ch.id, ch.budget_id, ch.period_start, k.spent_credits, k.held_credits
             FROM budget_charges ch JOIN budget_counters k ON k.budget_id = ch.budget_id AND k.period_start = ch.period_start
            WHERE ch.user_id = p_user AND ch.session_id = p_session ORDER BY ch.budget_id, ch.period_start LOOP
    SELECT * INTO b FROM budgets WHERE id = c.budget_id;
    IF c.spent_credits + c.held_credits + p_amount > b.limit_credits THEN
      RAISE EXCEPTION 'budget % would be exceeded', b.id
        USING ERRCODE = 'P0B01', DETAIL = acct_budget_details(b, c.period_start, c.spent_credits, c.held_credits)::text;
    END IF;
  END LOOP;
END $$;
