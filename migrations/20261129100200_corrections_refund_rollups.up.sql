-- Statistics show refunds (issue 16): credits stay net of refunds in every rollup (a refund lowers them),
-- and refunded credits are counted apart where statistics read them: per user x day x service x model
-- (usage_daily, user statistics), per day x model x shard (usage_daily_system, system statistics) and all
-- time per shard (usage_totals). Filled by acct_usage_fold_refunded from the usage_daily trigger.
ALTER TABLE usage_daily ADD COLUMN refunded_credits bigint NOT NULL DEFAULT 0;
ALTER TABLE usage_daily_system ADD COLUMN refunded_credits bigint NOT NULL DEFAULT 0;
ALTER TABLE usage_totals ADD COLUMN refunded_credits bigint NOT NULL DEFAULT 0;
