-- acct_budget_threshold: first created for budgets (issue 14, docs/budgets.md).
-- After spend or holds grew on the counter (p_budget, p_start) — locked by the caller, in the same statement
-- as the movement — announces each level of 80% and 100% of the limit that spent + held (what the budget
-- test counts) has now reached for the first time in that period: one budget.threshold event per level,
-- lowest first, for p_user (whose movement reached it) and the org of an org budget. The level reached is
-- kept on the counter row (threshold_level), so a level is announced once per period even if spend later
-- drops (release, refund) and rises again; the next period's row starts at 0.
CREATE OR REPLACE FUNCTION acct_budget_threshold(p_user text, p_budget bigint, p_start timestamptz)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  b budgets%ROWTYPE;
  k budget_counters%ROWTYPE;
  v_used bigint;
  v_level smallint;
  v_org text;
  v_pct smallint;
BEGIN
  SELECT * INTO k FROM budget_counters WHERE budget_id = p_budget AND period_start = p_start;
  IF NOT FOUND OR k.threshold_level >= 100 THEN
    RETURN;
  END IF;
  SELECT * INTO b FROM budgets WHERE id = p_budget;
  v_used := k.spent_credits + k.held_credits;
  v_level := CASE WHEN v_used = 0 THEN 0
                  WHEN v_used >= b.limit_credits THEN 100
                  WHEN v_used::numeric * 5 >= b.limit_credits::numeric * 4 THEN 80
                  ELSE 0 END;
  IF v_level <= k.threshold_level THEN
    RETURN;
  END IF;
  UPDATE budget_counters SET threshold_level = v_level WHERE budget_id = p_budget AND period_start = p_start;
  v_org := coalesce(b.org_id, (SELECT org_id FROM user_accounts WHERE id = p_user));
  FOREACH v_pct IN ARRAY ARRAY[80, 100]::smallint[] LOOP
    CONTINUE WHEN v_pct <= k.threshold_level OR v_pct > v_level;
    PERFORM acct_event_emit('budget.threshold', p_user, jsonb_build_object(
      'budgetId', b.id::text,
      'scope', CASE WHEN b.user_id IS NOT NULL THEN jsonb_build_object('userId', b.user_id)
                    ELSE jsonb_build_object('orgId', b.org_id) END,
      'period', b.period,
      'modelId', b.model_id,
      'thresholdPercent', v_pct,
      'limitCredits', acct_event_credits(b.limit_credits),
      'spentCredits', acct_event_credits(k.spent_credits),
      'heldCredits', acct_event_credits(k.held_credits),
      'periodStart', to_char(p_start AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
      'resetsAt', to_char(acct_budget_period_end(b.period, b.timezone, p_start) AT TIME ZONE 'UTC',
                          'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')), v_org);
  END LOOP;
END $$;
