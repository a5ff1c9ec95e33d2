DROP TRIGGER usage_daily_propagate ON usage_daily;
ALTER TABLE usage_daily
  ALTER COLUMN cache_write_tokens TYPE bigint, ALTER COLUMN cache_write_1h_tokens TYPE bigint,
  ALTER COLUMN reasoning_tokens TYPE bigint, ALTER COLUMN refunded_credits TYPE bigint;
ALTER TABLE usage_daily_system
  ALTER COLUMN cache_write_tokens TYPE bigint, ALTER COLUMN cache_write_1h_tokens TYPE bigint,
  ALTER COLUMN reasoning_tokens TYPE bigint, ALTER COLUMN refunded_credits TYPE bigint;
ALTER TABLE usage_totals ALTER COLUMN refunded_credits TYPE bigint;
CREATE TRIGGER usage_daily_propagate AFTER INSERT OR UPDATE OR DELETE ON usage_daily
  FOR EACH ROW EXECUTE FUNCTION acct_usage_daily_propagate();
