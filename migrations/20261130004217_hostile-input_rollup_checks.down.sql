ALTER TABLE session_status_counts DROP CONSTRAINT IF EXISTS session_status_counts_non_negative;
ALTER TABLE usage_totals DROP CONSTRAINT IF EXISTS usage_totals_non_negative;
ALTER TABLE usage_user_weekly DROP CONSTRAINT IF EXISTS usage_user_weekly_non_negative;
ALTER TABLE usage_user_daily DROP CONSTRAINT IF EXISTS usage_user_daily_non_negative;
ALTER TABLE usage_daily_system DROP CONSTRAINT IF EXISTS usage_daily_system_non_negative;
ALTER TABLE usage_daily DROP CONSTRAINT IF EXISTS usage_daily_non_negative_kinds;
