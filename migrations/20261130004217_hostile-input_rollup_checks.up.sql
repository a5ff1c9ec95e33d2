-- Issue 12, item 9: the derived rollups are non-negative, like usage_daily (20261129100500_hostile-input_schema_constraints).
-- They used to be folded by INSERT ... ON CONFLICT DO UPDATE of signed deltas, which PostgreSQL checks against
-- a CHECK before it finds the conflict; acct_usage_fold, acct_usage_fold_refunded and acct_session_status_count
-- now update in place and insert only missing rows, so a refund or a late finalize passes and only a truly
-- negative rollup is refused. Added NOT VALID, then validated against the data.
-- usage_daily's own CHECK predates the token kinds and refunds: those columns get theirs.
ALTER TABLE usage_daily ADD CONSTRAINT usage_daily_non_negative_kinds
  CHECK (cache_write_tokens >= 0 AND cache_write_1h_tokens >= 0 AND reasoning_tokens >= 0 AND refunded_credits >= 0) NOT VALID;
ALTER TABLE usage_daily_system ADD CONSTRAINT usage_daily_system_non_negative
  CHECK (requests >= 0 AND credits >= 0 AND unpaid_credits >= 0 AND refunded_credits >= 0 AND input_tokens >= 0
         AND output_tokens >= 0 AND cached_input_tokens >= 0 AND cache_write_tokens >= 0
         AND cache_write_1h_tokens >= 0 AND reasoning_tokens >= 0) NOT VALID;
ALTER TABLE usage_user_daily ADD CONSTRAINT usage_user_daily_non_negative
  CHECK (requests >= 0 AND credits >= 0 AND unpaid_credits >= 0) NOT VALID;
ALTER TABLE usage_user_weekly ADD CONSTRAINT usage_user_weekly_non_negative
  CHECK (requests >= 0 AND credits >= 0 AND unpaid_credits >= 0) NOT VALID;
ALTER TABLE usage_totals ADD CONSTRAINT usage_totals_non_negative
  CHECK (requests >= 0 AND credits >= 0 AND unpaid_credits >= 0 AND refunded_credits >= 0) NOT VALID;
ALTER TABLE session_status_counts ADD CONSTRAINT session_status_counts_non_negative CHECK (sessions >= 0) NOT VALID;
ALTER TABLE usage_daily VALIDATE CONSTRAINT usage_daily_non_negative_kinds;
ALTER TABLE usage_daily_system VALIDATE CONSTRAINT usage_daily_system_non_negative;
ALTER TABLE usage_user_daily VALIDATE CONSTRAINT usage_user_daily_non_negative;
ALTER TABLE usage_user_weekly VALIDATE CONSTRAINT usage_user_weekly_non_negative;
ALTER TABLE usage_totals VALIDATE CONSTRAINT usage_totals_non_negative;
ALTER TABLE session_status_counts VALIDATE CONSTRAINT session_status_counts_non_negative;
