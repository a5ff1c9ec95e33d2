-- acct_usage_daily_propagate: current definition (first created in migrations/20261124003000_usage.up.sql).
-- Propagates every change of usage_daily (insert, upsert, later delta adjustments, deletes) to the
-- derived rollups. A bulk loader that builds the derived rollups itself (scripts/seed-usage.ts) sets
-- acct.bulk_rollup = 'on' for its transaction to skip this. Refunded credits are folded only when they move:
-- a PERFORM is a query of its own even when the function returns at once (issue 19: this runs at every settle).
CREATE OR REPLACE FUNCTION acct_usage_daily_propagate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF current_setting('acct.bulk_rollup', true) = 'on' THEN
    RETURN NULL;
  END IF;
  IF TG_OP = 'UPDATE' AND OLD.user_id = NEW.user_id AND OLD.day = NEW.day AND OLD.model_id = NEW.model_id THEN
    PERFORM acct_usage_fold(NEW.user_id, NEW.day, NEW.model_id, NEW.requests - OLD.requests,
                            NEW.credits - OLD.credits, NEW.unpaid_credits - OLD.unpaid_credits,
                            NEW.input_tokens - OLD.input_tokens, NEW.output_tokens - OLD.output_tokens,
                            NEW.cached_input_tokens - OLD.cached_input_tokens,
                            NEW.cache_write_tokens - OLD.cache_write_tokens,
                            NEW.cache_write_1h_tokens - OLD.cache_write_1h_tokens,
                            NEW.reasoning_tokens - OLD.reasoning_tokens);
    IF NEW.refunded_credits <> OLD.refunded_credits THEN
      PERFORM acct_usage_fold_refunded(NEW.user_id, NEW.day, NEW.model_id, NEW.refunded_credits - OLD.refunded_credits);
    END IF;
    RETURN NULL;
  END IF;
  IF TG_OP IN ('UPDATE', 'DELETE') THEN
    PERFORM acct_usage_fold(OLD.user_id, OLD.day, OLD.model_id, -OLD.requests, -OLD.credits, -OLD.unpaid_credits,
                            -OLD.input_tokens, -OLD.output_tokens, -OLD.cached_input_tokens,
                            -OLD.cache_write_tokens, -OLD.cache_write_1h_tokens, -OLD.reasoning_tokens);
    IF OLD.refunded_credits <> 0 THEN
      PERFORM acct_usage_fold_refunded(OLD.user_id, OLD.day, OLD.model_id, -OLD.refunded_credits);
    END IF;
  END IF;
  IF TG_OP IN ('UPDATE', 'INSERT') THEN
    PERFORM acct_usage_fold(NEW.user_id, NEW.day, NEW.model_id, NEW.requests, NEW.credits, NEW.unpaid_credits,
                            NEW.input_tokens, NEW.output_tokens, NEW.cached_input_tokens,
                            NEW.cache_write_tokens, NEW.cache_write_1h_tokens, NEW.reasoning_tokens);
    IF NEW.refunded_credits <> 0 THEN
      PERFORM acct_usage_fold_refunded(NEW.user_id, NEW.day, NEW.model_id, NEW.refunded_credits);
    END IF;
  END IF;
  RETURN NULL;
END $$;
