-- acct_event_credits: micro-credits as the JSON number of credits an event payload carries (exact: NUMERIC).
CREATE OR REPLACE FUNCTION acct_event_credits(p_micro bigint) RETURNS numeric LANGUAGE sql IMMUTABLE AS $$
  SELECT trim_scale(p_micro::numeric / 1000000)
$$;
