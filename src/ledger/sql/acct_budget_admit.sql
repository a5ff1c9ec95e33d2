-- acct_budget_admit: first created for budgets (issue 14, docs/budgets.md).
-- Refuses p_amount more spend by p_user on p_model at p_at when a budget that applies would be exceeded:
-- raises SQLSTATE P0B01 with the BUDGET_EXCEEDED details (jsonb) as DETAIL, which rolls back the whole
-- statement (nothing held, nothing recorded). Called with the counters and the user's row locked, so the
-- decision and the hold that follows are one atomic step.
CREATE OR REPLACE FUNCTION acct_budget_admit(p_user text, p_model text, p_amount bigint, p_at timestamptz)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  v_refusal jsonb;
BEGIN
  v_refusal := acct_budget_refusal(p_user, (SELECT org_id FROM user_accounts WHERE id = p_user), p_model,
                                   p_amount, p_at, true);
  IF v_refusal IS NOT NULL THEN
    RAISE EXCEPTION 'budget % would be exceeded', v_refusal->>'budgetId'
      USING ERRCODE = 'P0B01', DETAIL = v_refusal::text;
  END IF;
END $$;
