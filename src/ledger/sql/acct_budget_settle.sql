-- acct_budget_settle: first created for budgets (issue 14, docs/budgets.md).
-- A session's spend is now p_spent in total (finalize/abort: its real cost; expiry: what expiry charged;
-- a late finalize: the corrected cost, which may be lower). On every counter its hold touched: drop what it
-- still holds and move spent by the difference, in the period of the hold (the period the spend belongs to).
CREATE OR REPLACE FUNCTION acct_budget_settle(p_user text, p_session text, p_spent bigint)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  c record;
BEGIN
  FOR c IN SELECT id, budget_id, period_start, held_credits, spent_credits FROM budget_charges
            WHERE user_id = p_user AND session_id = p_session ORDER BY budget_id, period_start LOOP
    UPDATE budget_counters
       SET held_credits = held_credits - c.held_credits, spent_credits = spent_credits + (p_spent - c.spent_credits)
     WHERE budget_id = c.budget_id AND period_start = c.period_start;
    UPDATE budget_charges SET held_credits = 0, spent_credits = p_spent WHERE id = c.id;
    IF p_spent - c.spent_credits > c.held_credits THEN
      -- An overage: spent grew by more than the hold that left, so the period's total went up.
      PERFORM acct_budget_threshold(p_user, c.budget_id, c.period_start);
    END IF;
  END LOOP;
END $$;
