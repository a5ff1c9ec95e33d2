-- acct_budget_period_start: first created for budgets (issue 14, docs/budgets.md).
-- Start of the calendar period ('day' | 'week' | 'month') containing p_at, in time zone p_tz: local
-- midnight of that day / that Monday / the 1st, converted back to an instant. DST-correct because the
-- truncation happens on local time (a day may be 23 or 25 hours long); ISO weeks start on Monday.
CREATE OR REPLACE FUNCTION acct_budget_period_start(p_period text, p_tz text, p_at timestamptz)
RETURNS timestamptz LANGUAGE sql STABLE AS $$
  SELECT date_trunc(p_period, p_at AT TIME ZONE p_tz) AT TIME ZONE p_tz
$$;
