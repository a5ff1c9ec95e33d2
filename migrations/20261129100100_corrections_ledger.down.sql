DROP INDEX IF EXISTS credit_transactions_usage_record;
DROP INDEX IF EXISTS usage_records_unpaid;
-- Without a refunded column, a refunded record's cost is what is left of it (the rollups already count it net).
ALTER TABLE usage_records DROP CONSTRAINT usage_records_charged_plus_unpaid;
UPDATE usage_records SET credits = credits - refunded_credits WHERE refunded_credits > 0;
ALTER TABLE usage_records ADD CONSTRAINT usage_records_charged_plus_unpaid CHECK (charged_credits + unpaid_credits = credits);
ALTER TABLE usage_records DROP COLUMN refunded_credits;
ALTER TABLE credit_transactions DROP COLUMN origin_allocation_id;
-- The ledger is append-only: rows of the new types stay, so the old check is restored without validating them.
ALTER TABLE credit_transactions DROP CONSTRAINT credit_transactions_type_check;
ALTER TABLE credit_transactions ADD CONSTRAINT credit_transactions_type_check
  CHECK (type IN ('grant', 'hold', 'capture', 'release', 'charge', 'expire', 'adjust')) NOT VALID;
