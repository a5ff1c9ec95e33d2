-- acct_usage_fold: current definition (first created in migrations/20261124003000_usage.up.sql).
-- Adds signed amounts for one (user, day, model) to the derived rollups.
-- Amounts are numeric like the rollup columns (migrations/20261129100200_hostile-input_numeric_rollups and
-- 20261129120000_numeric_rollup_kinds): sums across users and days must not overflow.
-- The rollups are non-negative (CHECKs of migrations/20261130004217_hostile-input_rollup_checks). PostgreSQL
-- checks a CHECK against the row an INSERT proposes before ON CONFLICT finds the existing one, so a negative
-- delta (refund, late finalize, rerate) cannot be folded by an upsert: each row is updated in place, and
-- inserted only when missing. A negative delta with no row to subtract from is a
-- negative rollup, refused by the CHECK. Deltas that are all non-negative take one upsert statement.
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
  w date := p_day - (extract(isodow FROM p_day)::int - 1);
BEGIN
  -- A change that moves nothing here (e.g. only refunded credits) writes no rollup row.
  IF p_requests = 0 AND p_credits = 0 AND p_unpaid = 0 AND p_input = 0 AND p_output = 0 AND p_cached = 0
     AND p_cache_write = 0 AND p_cache_write_1h = 0 AND p_reasoning = 0 THEN
    RETURN;
  END IF;
  IF p_requests >= 0 AND p_credits >= 0 AND p_unpaid >= 0 AND p_input >= 0 AND p_output >= 0 AND p_cached >= 0
     AND p_cache_write >= 0 AND p_cache_write_1h >= 0 AND p_reasoning >= 0 THEN
    -- The common case, a new record (issue 19: this runs at every settle): no figure goes down, so an upsert
    -- cannot propose a negative row, and one statement folds all four rollups. Rows are locked in the loops'
    -- order: PostgreSQL runs the main statement (usage_daily_system) first, then the WITH statements that
    -- nothing reads, last listed first (seen on PostgreSQL 15) - so they are listed backwards.
    WITH totals AS (
      INSERT INTO usage_totals AS r (shard, requests, credits, unpaid_credits)
      VALUES (s, p_requests, p_credits, p_unpaid)
      ON CONFLICT (shard) DO UPDATE
         SET requests = r.requests + p_requests, credits = r.credits + p_credits, unpaid_credits = r.unpaid_credits + p_unpaid
    ), user_weekly AS (
      INSERT INTO usage_user_weekly AS r (week, user_id, requests, credits, unpaid_credits)
      VALUES (w, p_user, p_requests, p_credits, p_unpaid)
      ON CONFLICT (week, user_id) DO UPDATE
         SET requests = r.requests + p_requests, credits = r.credits + p_credits, unpaid_credits = r.unpaid_credits + p_unpaid
    ), user_daily AS (
      INSERT INTO usage_user_daily AS r (day, user_id, requests, credits, unpaid_credits)
      VALUES (p_day, p_user, p_requests, p_credits, p_unpaid)
      ON CONFLICT (day, user_id) DO UPDATE
         SET requests = r.requests + p_requests, credits = r.credits + p_credits, unpaid_credits = r.unpaid_credits + p_unpaid
    )
    INSERT INTO usage_daily_system AS r (day, model_id, shard, requests, credits, unpaid_credits, input_tokens, output_tokens,
                                         cached_input_tokens, cache_write_tokens, cache_write_1h_tokens, reasoning_tokens)
    VALUES (p_day, p_model, s, p_requests, p_credits, p_unpaid, p_input, p_output, p_cached, p_cache_write,
            p_cache_write_1h, p_reasoning)
    ON CONFLICT (day, model_id, shard) DO UPDATE
       SET requests = r.requests + p_requests, credits = r.credits + p_credits, unpaid_credits = r.unpaid_credits + p_unpaid,
           input_tokens = r.input_tokens + p_input, output_tokens = r.output_tokens + p_output,
           cached_input_tokens = r.cached_input_tokens + p_cached, cache_write_tokens = r.cache_write_tokens + p_cache_write,
           cache_write_1h_tokens = r.cache_write_1h_tokens + p_cache_write_1h,
           reasoning_tokens = r.reasoning_tokens + p_reasoning;
    RETURN;
  END IF;
  -- A negative delta. Each loop: update the row; if there is none, insert it; if a concurrent transaction
  -- inserted it first (DO NOTHING waited for it to commit), update it on the next turn.
  LOOP
    UPDATE usage_daily_system
       SET requests = requests + p_requests, credits = credits + p_credits, unpaid_credits = unpaid_credits + p_unpaid,
           input_tokens = input_tokens + p_input, output_tokens = output_tokens + p_output,
           cached_input_tokens = cached_input_tokens + p_cached, cache_write_tokens = cache_write_tokens + p_cache_write,
           cache_write_1h_tokens = cache_write_1h_tokens + p_cache_write_1h, reasoning_tokens = reasoning_tokens + p_reasoning
     WHERE day = p_day AND model_id = p_model AND shard = s;
    EXIT WHEN FOUND;
    INSERT INTO usage_daily_system (day, model_id, shard, requests, credits, unpaid_credits, input_tokens, output_tokens,
                                    cached_input_tokens, cache_write_tokens, cache_write_1h_tokens, reasoning_tokens)
    VALUES (p_day, p_model, s, p_requests, p_credits, p_unpaid, p_input, p_output, p_cached, p_cache_write,
            p_cache_write_1h, p_reasoning)
    ON CONFLICT DO NOTHING;
    EXIT WHEN FOUND;
  END LOOP;
  LOOP
    UPDATE usage_user_daily
       SET requests = requests + p_requests, credits = credits + p_credits, unpaid_credits = unpaid_credits + p_unpaid
     WHERE day = p_day AND user_id = p_user;
    EXIT WHEN FOUND;
    INSERT INTO usage_user_daily (day, user_id, requests, credits, unpaid_credits)
    VALUES (p_day, p_user, p_requests, p_credits, p_unpaid)
    ON CONFLICT DO NOTHING;
    EXIT WHEN FOUND;
  END LOOP;
  LOOP
    UPDATE usage_user_weekly
       SET requests = requests + p_requests, credits = credits + p_credits, unpaid_credits = unpaid_credits + p_unpaid
     WHERE week = w AND user_id = p_user;
    EXIT WHEN FOUND;
    INSERT INTO usage_user_weekly (week, user_id, requests, credits, unpaid_credits)
    VALUES (w, p_user, p_requests, p_credits, p_unpaid)
    ON CONFLICT DO NOTHING;
    EXIT WHEN FOUND;
  END LOOP;
  LOOP
    UPDATE usage_totals
       SET requests = requests + p_requests, credits = credits + p_credits, unpaid_credits = unpaid_credits + p_unpaid
     WHERE shard = s;
    EXIT WHEN FOUND;
    INSERT INTO usage_totals (shard, requests, credits, unpaid_credits)
    VALUES (s, p_requests, p_credits, p_unpaid)
    ON CONFLICT DO NOTHING;
    EXIT WHEN FOUND;
  END LOOP;
END $$;
