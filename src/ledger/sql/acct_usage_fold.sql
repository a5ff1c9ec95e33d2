-- acct_usage_fold: current definition (first created in migrations/20261124003000_usage.up.sql).
-- Adds signed amounts for one (user, day, model) to the derived rollups.
-- Amounts are numeric like the rollup columns (migrations/20261129100200_hostile-input_numeric_rollups and
-- 20261129120000_numeric_rollup_kinds): sums across users and days must not overflow.
DROP FUNCTION IF EXISTS acct_usage_fold(text, date, text, bigint, bigint, bigint, bigint, bigint, bigint);
DROP FUNCTION IF EXISTS acct_usage_fold(text, date, text, bigint, bigint, bigint, bigint, bigint, bigint, bigint, bigint, bigint);
DROP FUNCTION IF EXISTS acct_usage_fold(text, date, text, bigint, numeric, numeric, numeric, numeric, numeric);
CREATE OR REPLACE FUNCTION acct_usage_fold(p_user text, p_day date, p_model text, p_requests bigint, p_credits numeric,
                                p_unpaid numeric, p_input numeric, p_output numeric, p_cached numeric,
                                p_cache_write numeric DEFAULT 0, p_cache_write_1h numeric DEFAULT 0,
                                p_reasoning numeric DEFAULT 0)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  s smallint := acct_usage_shard(p_user);
BEGIN
  INSERT INTO usage_daily_system AS t (day, model_id, shard, requests, credits, unpaid_credits, input_tokens,
                                       output_tokens, cached_input_tokens, cache_write_tokens, cache_write_1h_tokens,
                                       reasoning_tokens)
  VALUES (p_day, p_model, s, p_requests, p_credits, p_unpaid, p_input, p_output, p_cached, p_cache_write,
          p_cache_write_1h, p_reasoning)
  ON CONFLICT (day, model_id, shard) DO UPDATE
     SET requests = t.requests + EXCLUDED.requests,
         credits = t.credits + EXCLUDED.credits,
         unpaid_credits = t.unpaid_credits + EXCLUDED.unpaid_credits,
         input_tokens = t.input_tokens + EXCLUDED.input_tokens,
         output_tokens = t.output_tokens + EXCLUDED.output_tokens,
         cached_input_tokens = t.cached_input_tokens + EXCLUDED.cached_input_tokens,
         cache_write_tokens = t.cache_write_tokens + EXCLUDED.cache_write_tokens,
         cache_write_1h_tokens = t.cache_write_1h_tokens + EXCLUDED.cache_write_1h_tokens,
         reasoning_tokens = t.reasoning_tokens + EXCLUDED.reasoning_tokens;
  INSERT INTO usage_user_daily AS t (day, user_id, requests, credits, unpaid_credits)
  VALUES (p_day, p_user, p_requests, p_credits, p_unpaid)
  ON CONFLICT (day, user_id) DO UPDATE
     SET requests = t.requests + EXCLUDED.requests,
         credits = t.credits + EXCLUDED.credits,
         unpaid_credits = t.unpaid_credits + EXCLUDED.unpaid_credits;
  INSERT INTO usage_user_weekly AS t (week, user_id, requests, credits, unpaid_credits)
  VALUES (p_day - (extract(isodow FROM p_day)::int - 1), p_user, p_requests, p_credits, p_unpaid)
  ON CONFLICT (week, user_id) DO UPDATE
     SET requests = t.requests + EXCLUDED.requests,
         credits = t.credits + EXCLUDED.credits,
         unpaid_credits = t.unpaid_credits + EXCLUDED.unpaid_credits;
  INSERT INTO usage_totals AS t (shard, requests, credits, unpaid_credits)
  VALUES (s, p_requests, p_credits, p_unpaid)
  ON CONFLICT (shard) DO UPDATE
     SET requests = t.requests + EXCLUDED.requests,
         credits = t.credits + EXCLUDED.credits,
         unpaid_credits = t.unpaid_credits + EXCLUDED.unpaid_credits;
END $$;
