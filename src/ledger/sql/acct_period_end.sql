-- acct_period_end (issue 16): the end of the calendar period (day, week, month) that starts at p_start in the
-- IANA zone p_tz: local start + 1 period, read back in the zone, so days are 23 or 25 hours across DST changes
-- and months follow the calendar.
CREATE OR REPLACE FUNCTION acct_period_end(p_period text, p_start timestamptz, p_tz text)
RETURNS timestamptz LANGUAGE sql IMMUTABLE AS $$
  SELECT ((p_start AT TIME ZONE p_tz) + ('1 ' || p_period)::interval) AT TIME ZONE p_tz
$$;
