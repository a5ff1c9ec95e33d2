ALTER TABLE usage_totals DROP COLUMN refunded_credits;
ALTER TABLE usage_daily_system DROP COLUMN refunded_credits;
ALTER TABLE usage_daily DROP COLUMN refunded_credits;
DROP FUNCTION IF EXISTS acct_usage_fold_refunded(text, date, text, bigint);
