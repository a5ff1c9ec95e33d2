-- Back to one CHECK per column, with the names PostgreSQL generated for them.
ALTER TABLE streaming_sessions
  DROP CONSTRAINT streaming_sessions_non_negative,
  ADD CONSTRAINT streaming_sessions_estimated_input_tokens_check CHECK (estimated_input_tokens >= 0),
  ADD CONSTRAINT streaming_sessions_estimated_output_tokens_check CHECK (estimated_output_tokens >= 0),
  ADD CONSTRAINT streaming_sessions_estimated_credits_check CHECK (estimated_credits >= 0),
  ADD CONSTRAINT streaming_sessions_estimated_input_credits_check CHECK (estimated_input_credits >= 0),
  ADD CONSTRAINT streaming_sessions_allocated_credits_check CHECK (allocated_credits >= 0),
  ADD CONSTRAINT streaming_sessions_used_credits_check CHECK (used_credits >= 0),
  ADD CONSTRAINT streaming_sessions_refunded_credits_check CHECK (refunded_credits >= 0),
  ADD CONSTRAINT streaming_sessions_unpaid_credits_check CHECK (unpaid_credits >= 0),
  ADD CONSTRAINT streaming_sessions_actual_input_tokens_check CHECK (actual_input_tokens >= 0),
  ADD CONSTRAINT streaming_sessions_actual_output_tokens_check CHECK (actual_output_tokens >= 0),
  ADD CONSTRAINT streaming_sessions_cached_input_tokens_check CHECK (cached_input_tokens >= 0),
  ADD CONSTRAINT streaming_sessions_cache_write_tokens_check CHECK (cache_write_tokens >= 0),
  ADD CONSTRAINT streaming_sessions_cache_write_1h_tokens_check CHECK (cache_write_1h_tokens >= 0),
  ADD CONSTRAINT streaming_sessions_reasoning_tokens_check CHECK (reasoning_tokens >= 0);
ALTER TABLE usage_records
  DROP CONSTRAINT usage_records_non_negative,
  ADD CONSTRAINT usage_records_input_tokens_check CHECK (input_tokens >= 0),
  ADD CONSTRAINT usage_records_output_tokens_check CHECK (output_tokens >= 0),
  ADD CONSTRAINT usage_records_cached_input_tokens_check CHECK (cached_input_tokens >= 0),
  ADD CONSTRAINT usage_records_cache_write_tokens_check CHECK (cache_write_tokens >= 0),
  ADD CONSTRAINT usage_records_cache_write_1h_tokens_check CHECK (cache_write_1h_tokens >= 0),
  ADD CONSTRAINT usage_records_reasoning_tokens_check CHECK (reasoning_tokens >= 0),
  ADD CONSTRAINT usage_records_credits_check CHECK (credits >= 0),
  ADD CONSTRAINT usage_records_charged_credits_check CHECK (charged_credits >= 0),
  ADD CONSTRAINT usage_records_unpaid_credits_check CHECK (unpaid_credits >= 0),
  ADD CONSTRAINT usage_records_refunded_credits_check CHECK (refunded_credits >= 0);
ALTER TABLE usage_daily
  DROP CONSTRAINT usage_daily_non_negative,
  ADD CONSTRAINT usage_daily_non_negative
    CHECK (requests >= 0 AND credits >= 0 AND unpaid_credits >= 0 AND input_tokens >= 0 AND output_tokens >= 0
           AND cached_input_tokens >= 0),
  ADD CONSTRAINT usage_daily_non_negative_kinds
    CHECK (cache_write_tokens >= 0 AND cache_write_1h_tokens >= 0 AND reasoning_tokens >= 0 AND refunded_credits >= 0);
ALTER TABLE usage_daily_system
  DROP CONSTRAINT usage_daily_system_non_negative,
  ADD CONSTRAINT usage_daily_system_non_negative
    CHECK (requests >= 0 AND credits >= 0 AND unpaid_credits >= 0 AND refunded_credits >= 0 AND input_tokens >= 0
           AND output_tokens >= 0 AND cached_input_tokens >= 0 AND cache_write_tokens >= 0
           AND cache_write_1h_tokens >= 0 AND reasoning_tokens >= 0);
ALTER TABLE usage_user_daily
  DROP CONSTRAINT usage_user_daily_non_negative,
  ADD CONSTRAINT usage_user_daily_non_negative CHECK (requests >= 0 AND credits >= 0 AND unpaid_credits >= 0);
ALTER TABLE usage_user_weekly
  DROP CONSTRAINT usage_user_weekly_non_negative,
  ADD CONSTRAINT usage_user_weekly_non_negative CHECK (requests >= 0 AND credits >= 0 AND unpaid_credits >= 0);
ALTER TABLE usage_totals
  DROP CONSTRAINT usage_totals_non_negative,
  ADD CONSTRAINT usage_totals_non_negative CHECK (requests >= 0 AND credits >= 0 AND unpaid_credits >= 0 AND refunded_credits >= 0);
