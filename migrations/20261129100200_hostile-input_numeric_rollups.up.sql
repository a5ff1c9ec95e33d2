-- Issue 12: no sequence of valid requests may overflow a rollup. One request costs at most 1e9 credits
-- (1e15 micro-credits) and carries at most 1e12 tokens per kind, so a bigint sum of credits overflows after
-- about 9,200 such requests and a token sum after about 9.2 million: the review overflowed a shard of
-- usage_totals with 1,023 records by three users, after which every charge in that shard failed.
-- Credits and token sums become NUMERIC (exact, unbounded for any realistic count). Request counts stay
-- bigint: each request adds 1, so 2^63 of them is out of reach.
-- The fold function's signature changes with them (its new definition is in src/ledger/sql).
DROP TRIGGER usage_daily_propagate ON usage_daily;
DROP FUNCTION IF EXISTS acct_usage_fold(text, date, text, bigint, bigint, bigint, bigint, bigint, bigint);

ALTER TABLE usage_daily
  ALTER COLUMN credits TYPE numeric, ALTER COLUMN unpaid_credits TYPE numeric,
  ALTER COLUMN input_tokens TYPE numeric, ALTER COLUMN output_tokens TYPE numeric,
  ALTER COLUMN cached_input_tokens TYPE numeric;
ALTER TABLE usage_daily_system
  ALTER COLUMN credits TYPE numeric, ALTER COLUMN unpaid_credits TYPE numeric,
  ALTER COLUMN input_tokens TYPE numeric, ALTER COLUMN output_tokens TYPE numeric,
  ALTER COLUMN cached_input_tokens TYPE numeric;
ALTER TABLE usage_user_daily ALTER COLUMN credits TYPE numeric, ALTER COLUMN unpaid_credits TYPE numeric;
ALTER TABLE usage_user_weekly ALTER COLUMN credits TYPE numeric, ALTER COLUMN unpaid_credits TYPE numeric;
ALTER TABLE usage_totals ALTER COLUMN credits TYPE numeric, ALTER COLUMN unpaid_credits TYPE numeric;

-- Recreated after the columns changed; acct_usage_daily_propagate itself is a repeatable ledger function.
CREATE TRIGGER usage_daily_propagate AFTER INSERT OR UPDATE OR DELETE ON usage_daily
  FOR EACH ROW EXECUTE FUNCTION acct_usage_daily_propagate();
