-- acct_usage_fold_refunded (issue 16): adds a signed amount of refunded credits for one (user, day, model) to
-- the derived rollups that statistics read it from (usage_daily_system, usage_totals). Called by the
-- usage_daily trigger when refunded_credits changes; credits themselves travel through acct_usage_fold.
DROP FUNCTION IF EXISTS acct_usage_fold_refunded(text, date, text, bigint);
-- Numeric like the rollup columns (migrations/20261129120000_numeric_rollup_kinds). Update in place, insert
-- only when missing, like acct_usage_fold (the rollups' non-negative CHECKs refuse a negative upsert row).
CREATE OR REPLACE FUNCTION acct_usage_fold_refunded(p_user text, p_day date, p_model text, p_refunded numeric)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  s smallint := acct_usage_shard(p_user);
BEGIN
  IF p_refunded = 0 THEN
    RETURN;
  END IF;
  LOOP
    UPDATE usage_daily_system SET refunded_credits = refunded_credits + p_refunded
     WHERE day = p_day AND model_id = p_model AND shard = s;
    EXIT WHEN FOUND;
    INSERT INTO usage_daily_system (day, model_id, shard, refunded_credits) VALUES (p_day, p_model, s, p_refunded)
    ON CONFLICT DO NOTHING;
    EXIT WHEN FOUND;
  END LOOP;
  LOOP
    UPDATE usage_totals SET refunded_credits = refunded_credits + p_refunded WHERE shard = s;
    EXIT WHEN FOUND;
    INSERT INTO usage_totals (shard, refunded_credits) VALUES (s, p_refunded)
    ON CONFLICT DO NOTHING;
    EXIT WHEN FOUND;
  END LOOP;
END $$;
