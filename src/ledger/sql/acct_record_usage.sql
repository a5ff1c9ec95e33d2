-- acct_record_usage: current definition (first created in migrations/20261124000100_initial_schema.up.sql).
-- Inserts one usage record and folds it into the daily rollup of the day it occurred (p_occurred_at,
-- default now: late events count on their own day). Returns the record id. Token kinds: p_input is the
-- whole prompt of which p_cached, p_cache_write and p_cache_write_1h are parts; p_output the whole
-- completion of which p_reasoning is a part.
DROP FUNCTION IF EXISTS acct_record_usage(text, text, text, text, text, integer, bigint, bigint, bigint, bigint, bigint,
                                          bigint, jsonb, text);
CREATE OR REPLACE FUNCTION acct_record_usage(
  p_user text, p_session text, p_service text, p_operation text, p_model text, p_price_version integer,
  p_input bigint, p_output bigint, p_cached bigint, p_credits bigint, p_charged bigint, p_unpaid bigint,
  p_metadata jsonb, p_recorded_by text,
  p_cache_write bigint DEFAULT 0, p_cache_write_1h bigint DEFAULT 0, p_reasoning bigint DEFAULT 0,
  p_occurred_at timestamptz DEFAULT NULL
) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  new_id bigint;
  occurred timestamptz;
BEGIN
  -- Without p_occurred_at, created_at takes its column default (now()), which tests may repoint.
  IF p_occurred_at IS NULL THEN
    INSERT INTO usage_records (user_id, session_id, service, operation, model_id, price_version, input_tokens,
                               output_tokens, cached_input_tokens, cache_write_tokens, cache_write_1h_tokens,
                               reasoning_tokens, credits, charged_credits, unpaid_credits, metadata, recorded_by)
    VALUES (p_user, p_session, p_service, p_operation, p_model, p_price_version, p_input, p_output, p_cached,
            coalesce(p_cache_write, 0), coalesce(p_cache_write_1h, 0), coalesce(p_reasoning, 0),
            p_credits, p_charged, p_unpaid, p_metadata, p_recorded_by)
    RETURNING id, created_at INTO new_id, occurred;
  ELSE
    INSERT INTO usage_records (user_id, session_id, service, operation, model_id, price_version, input_tokens,
                               output_tokens, cached_input_tokens, cache_write_tokens, cache_write_1h_tokens,
                               reasoning_tokens, credits, charged_credits, unpaid_credits, metadata, recorded_by,
                               created_at)
    VALUES (p_user, p_session, p_service, p_operation, p_model, p_price_version, p_input, p_output, p_cached,
            coalesce(p_cache_write, 0), coalesce(p_cache_write_1h, 0), coalesce(p_reasoning, 0),
            p_credits, p_charged, p_unpaid, p_metadata, p_recorded_by, p_occurred_at)
    RETURNING id, created_at INTO new_id, occurred;
  END IF;
  INSERT INTO usage_daily AS d (user_id, day, service, operation, model_id, requests, credits, unpaid_credits,
                                input_tokens, output_tokens, cached_input_tokens, cache_write_tokens,
                                cache_write_1h_tokens, reasoning_tokens)
  VALUES (p_user, (occurred AT TIME ZONE 'UTC')::date, p_service, p_operation, coalesce(p_model, ''), 1,
          p_credits, p_unpaid, p_input, p_output, p_cached, coalesce(p_cache_write, 0), coalesce(p_cache_write_1h, 0),
          coalesce(p_reasoning, 0))
  ON CONFLICT (user_id, day, service, operation, model_id) DO UPDATE
     SET requests = d.requests + 1,
         credits = d.credits + EXCLUDED.credits,
         unpaid_credits = d.unpaid_credits + EXCLUDED.unpaid_credits,
         input_tokens = d.input_tokens + EXCLUDED.input_tokens,
         output_tokens = d.output_tokens + EXCLUDED.output_tokens,
         cached_input_tokens = d.cached_input_tokens + EXCLUDED.cached_input_tokens,
         cache_write_tokens = d.cache_write_tokens + EXCLUDED.cache_write_tokens,
         cache_write_1h_tokens = d.cache_write_1h_tokens + EXCLUDED.cache_write_1h_tokens,
         reasoning_tokens = d.reasoning_tokens + EXCLUDED.reasoning_tokens;
  RETURN new_id;
END $$;
