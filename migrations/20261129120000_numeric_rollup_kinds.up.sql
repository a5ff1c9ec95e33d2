-- The rollup columns added beside the numeric conversion (token kinds, refunded credits) become NUMERIC too,
-- for the same reason: no sequence of valid requests may overflow a sum across users and days.
DROP TRIGGER usage_daily_propagate ON usage_daily;
ALTER TABLE usage_daily
  ALTER COLUMN cache_write_tokens TYPE numeric, ALTER COLUMN cache_write_1h_tokens TYPE numeric,
  ALTER COLUMN reasoning_tokens TYPE numeric, ALTER COLUMN refunded_credits TYPE numeric;
ALTER TABLE usage_daily_system
  ALTER COLUMN cache_write_tokens TYPE numeric, ALTER COLUMN cache_write_1h_tokens TYPE numeric,
  ALTER COLUMN reasoning_tokens TYPE numeric, ALTER COLUMN refunded_credits TYPE numeric;
ALTER TABLE usage_totals ALTER COLUMN refunded_credits TYPE numeric;
CREATE TRIGGER usage_daily_propagate AFTER INSERT OR UPDATE OR DELETE ON usage_daily
  FOR EACH ROW EXECUTE FUNCTION acct_usage_daily_propagate();
