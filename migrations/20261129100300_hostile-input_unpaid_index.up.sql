-- Issue 12: UNPAID_LIMIT_CREDITS and the balance's unpaidCredits read a user's outstanding debt on every
-- initialize and own usage record. Only records with a debt are indexed, so the read is as small as the debt.
-- The corrections migration (debt settlement, oldest first) already creates usage_records_unpaid on
-- (user_id, created_at, id) WHERE unpaid_credits > 0, which serves this read too.
CREATE INDEX IF NOT EXISTS usage_records_unpaid ON usage_records (user_id) INCLUDE (unpaid_credits) WHERE unpaid_credits > 0;
