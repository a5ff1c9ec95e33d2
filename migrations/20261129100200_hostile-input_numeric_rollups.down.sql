-- Back to bigint rollups. Fails (changing nothing) if a sum no longer fits in a bigint.
DROP TRIGGER usage_daily_propagate ON usage_daily;
DROP FUNCTION IF EXISTS acct_usage_fold(text, date, text, bigint, numeric, numeric, numeric, numeric, numeric);
ALTER TABLE usage_daily
  ALTER COLUMN credits TYPE bigint, ALTER COLUMN unpaid_credits TYPE bigint,
  ALTER COLUMN input_tokens TYPE bigint, ALTER COLUMN output_tokens TYPE bigint,
  ALTER COLUMN cached_input_tokens TYPE bigint;
ALTER TABLE usage_daily_system
  ALTER COLUMN credits TYPE bigint, ALTER COLUMN unpaid_credits TYPE bigint,
  ALTER COLUMN input_tokens TYPE bigint, ALTER COLUMN output_tokens TYPE bigint,
  ALTER COLUMN cached_input_tokens TYPE bigint;
ALTER TABLE usage_user_daily ALTER COLUMN credits TYPE bigint, ALTER COLUMN unpaid_credits TYPE bigint;
ALTER TABLE usage_user_weekly ALTER COLUMN credits TYPE bigint, ALTER COLUMN unpaid_credits TYPE bigint;
ALTER TABLE usage_totals ALTER COLUMN credits TYPE bigint, ALTER COLUMN unpaid_credits TYPE bigint;
CREATE TRIGGER usage_daily_propagate AFTER INSERT OR UPDATE OR DELETE ON usage_daily
  FOR EACH ROW EXECUTE FUNCTION acct_usage_daily_propagate();
