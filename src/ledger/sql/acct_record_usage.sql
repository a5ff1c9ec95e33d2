-- acct_record_usage: current definition (first created in migrations/20261124000100_initial_schema.up.sql).
-- Inserts one usage record and folds it into the daily rollup. Returns the record id.
CREATE OR REPLACE FUNCTION acct_record_usage(
  p_user text, p_session text, p_service text, p_operation text, p_model text, p_price_version integer,
  p_input bigint, p_output bigint, p_cached bigint, p_credits bigint, p_charged bigint, p_unpaid bigint,
  p_metadata jsonb, p_recorded_by text
) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  new_id bigint;
  recorded_at timestamptz;
BEGIN
  INSERT INTO usage_records (user_id, session_id, service, operation, model_id, price_version, input_tokens,
                             output_tokens, cached_input_tokens, credits, charged_credits, unpaid_credits,
                             metadata, recorded_by)
  VALUES (p_user, p_session, p_service, p_operation, p_model, p_price_version, p_input, p_output, p_cached,
          p_credits, p_charged, p_unpaid, p_metadata, p_recorded_by)
  RETURNING id, created_at INTO new_id, recorded_at;
  INSERT INTO usage_daily AS d (user_id, day, service, operation, model_id, requests, credits, unpaid_credits,
                                input_tokens, output_tokens, cached_input_tokens)
  VALUES (p_user, (recorded_at AT TIME ZONE 'UTC')::date, p_service, p_operation, coalesce(p_model, ''), 1,
          p_credits, p_unpaid, p_input, p_output, p_cached)
  ON CONFLICT (user_id, day, service, operation, model_id) DO UPDATE
     SET requests = d.requests + 1,
         credits = d.credits + EXCLUDED.credits,
         unpaid_credits = d.unpaid_credits + EXCLUDED.unpaid_credits,
         input_tokens = d.input_tokens + EXCLUDED.input_tokens,
         output_tokens = d.output_tokens + EXCLUDED.output_tokens,
         cached_input_tokens = d.cached_input_tokens + EXCLUDED.cached_input_tokens;
  RETURN new_id;
END $$;
