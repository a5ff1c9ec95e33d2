-- acct_event_time: a timestamp as the ISO 8601 UTC string an event payload carries (NULL stays NULL).
CREATE OR REPLACE FUNCTION acct_event_time(p_at timestamptz) RETURNS text LANGUAGE sql STABLE AS $$
  SELECT to_char(p_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
$$;
