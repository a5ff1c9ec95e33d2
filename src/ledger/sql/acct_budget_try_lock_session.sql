-- acct_budget_try_lock_session: first created for budgets (issue 14, docs/budgets.md).
-- For the sweeper, which never waits for a lock: locks the counter rows a session's hold touched with
-- SKIP LOCKED and says whether it got all of them (true also when there are none).
CREATE OR REPLACE FUNCTION acct_budget_try_lock_session(p_user text, p_session text)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
  v_needed integer;
  v_got integer;
BEGIN
  SELECT count(*) INTO v_needed FROM budget_charges WHERE user_id = p_user AND session_id = p_session;
  IF v_needed = 0 THEN
    RETURN true;
  END IF;
  SELECT count(*) INTO v_got FROM (
    SELECT 1 FROM budget_counters k
     WHERE (k.budget_id, k.period_start) IN (SELECT budget_id, period_start FROM budget_charges
                                               WHERE user_id = p_user AND session_id = p_session)
     ORDER BY k.budget_id, k.period_start
       FOR UPDATE OF k SKIP LOCKED) got;
  RETURN v_got = v_needed;
END $$;
