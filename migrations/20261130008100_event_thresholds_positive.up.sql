-- Low-balance thresholds are positive micro-credits (config refuses anything else). acct_event_balance
-- (issue 19) computes the level from them with "not empty" (1 micro-credit) as the floor, which is only
-- the same as the old max-over-thresholds for positive thresholds: say so where the data lives.
ALTER TABLE event_settings ADD CONSTRAINT event_settings_thresholds_positive
  CHECK (0 < ALL (low_balance_thresholds) AND array_position(low_balance_thresholds, NULL) IS NULL);
