ALTER TABLE usage_daily_system
  DROP COLUMN cache_write_tokens, DROP COLUMN cache_write_1h_tokens, DROP COLUMN reasoning_tokens;
ALTER TABLE usage_daily
  DROP COLUMN cache_write_tokens, DROP COLUMN cache_write_1h_tokens, DROP COLUMN reasoning_tokens;
ALTER TABLE usage_records
  DROP COLUMN cache_write_tokens, DROP COLUMN cache_write_1h_tokens, DROP COLUMN reasoning_tokens,
  DROP COLUMN recorded_at;
ALTER TABLE streaming_sessions
  DROP COLUMN cache_write_tokens, DROP COLUMN cache_write_1h_tokens, DROP COLUMN reasoning_tokens;
DROP INDEX model_prices_effective;
ALTER TABLE model_prices
  DROP COLUMN cache_write_price_per_1m, DROP COLUMN cache_write_1h_price_per_1m, DROP COLUMN reasoning_price_per_1m;
