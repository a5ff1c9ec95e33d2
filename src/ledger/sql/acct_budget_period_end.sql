-- acct_budget_period_end: first created for budgets (issue 14, docs/budgets.md).
-- End (exclusive) of the calendar period containing p_at in p_tz: the start of the next one ("resetsAt").
CREATE OR REPLACE FUNCTION acct_budget_period_end(p_period text, p_tz text, p_at timestamptz)
RETURNS timestamptz LANGUAGE sql STABLE AS $$
  SELECT (date_trunc(p_period, p_at AT TIME ZONE p_tz) + ('1 ' || p_period)::interval) AT TIME ZONE p_tz
$$;
