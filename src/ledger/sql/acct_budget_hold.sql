-- acct_budget_hold: first created for budgets (issue 14, docs/budgets.md).
-- Adds a new session's hold to the counters acct_budget_open_lock locked and acct_budget_open_decide
-- admitted it on (same order, same periods), and remembers per budget what the session holds
-- (budget_charges), so its capture, release or
-- expiry later updates the same period's row. Called by acct_session_open after the draw, in the same
-- statement. Announces budget.threshold when the hold reaches 80% / 100% of a limit (acct_budget_threshold).
DROP FUNCTION IF EXISTS acct_budget_hold(text, text, text, bigint, timestamptz);
CREATE OR REPLACE FUNCTION acct_budget_hold(
  p_user text, p_session text, p_amount bigint, p_budget_ids bigint[], p_limits bigint[], p_period_starts timestamptz[]
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  v_used bigint;
  v_level smallint;
BEGIN
  FOR i IN 1 .. coalesce(array_length(p_budget_ids, 1), 0) LOOP
    UPDATE budget_counters SET held_credits = held_credits + p_amount
     WHERE budget_id = p_budget_ids[i] AND period_start = p_period_starts[i]
    RETURNING spent_credits + held_credits, threshold_level INTO v_used, v_level;
    CONTINUE WHEN NOT FOUND;
    INSERT INTO budget_charges (budget_id, period_start, user_id, session_id, held_credits)
    VALUES (p_budget_ids[i], p_period_starts[i], p_user, p_session, p_amount);
    IF v_level < 100 AND v_used > 0 AND v_used::numeric * 5 >= p_limits[i]::numeric * 4 THEN
      PERFORM acct_budget_threshold(p_user, p_budget_ids[i], p_period_starts[i]);  -- budget.threshold at 80% / 100%
    END IF;
  END LOOP;
END $$;
