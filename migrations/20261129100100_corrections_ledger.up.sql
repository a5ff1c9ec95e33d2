-- Corrections (issue 16): revoke, refund and forgive are new ledger types; a refund is tracked on its usage
-- record, and unpaid usage is found through a small partial index when new credits settle debt.
--   revoke   voids credits left in a lot                          (lot remaining -amount)
--   refund   returns charged credits of a usage record to a lot   (lot remaining +amount)
--   forgive  writes off unpaid credits of a usage record          (no lot; allocation_id is NULL)
-- 'adjust' stays signed: a positive adjustment opens a lot, a negative one takes from lots.
ALTER TABLE credit_transactions DROP CONSTRAINT credit_transactions_type_check;
ALTER TABLE credit_transactions ADD CONSTRAINT credit_transactions_type_check
  CHECK (type IN ('grant', 'hold', 'capture', 'release', 'charge', 'expire', 'adjust', 'revoke', 'refund', 'forgive'));

-- A refund row's origin: the lot the refunded credits were charged from. It is the row's own lot when they
-- go back there, or an expired lot whose credits went into a new lot instead; it keeps partial refunds exact.
ALTER TABLE credit_transactions ADD COLUMN origin_allocation_id bigint REFERENCES credit_allocations (id);

-- Refunds never edit the cost: credits = charged + unpaid + refunded.
ALTER TABLE usage_records ADD COLUMN refunded_credits bigint NOT NULL DEFAULT 0 CHECK (refunded_credits >= 0);
ALTER TABLE usage_records DROP CONSTRAINT usage_records_charged_plus_unpaid;
ALTER TABLE usage_records ADD CONSTRAINT usage_records_charged_plus_unpaid
  CHECK (charged_credits + unpaid_credits + refunded_credits = credits);

-- Debt settlement walks a user's unpaid records oldest first; almost all records are paid, so the index stays tiny.
CREATE INDEX usage_records_unpaid ON usage_records (user_id, created_at, id) WHERE unpaid_credits > 0;
-- Which lots paid a usage record (refunds return credits to them).
CREATE INDEX credit_transactions_usage_record ON credit_transactions (usage_record_id) WHERE usage_record_id IS NOT NULL;
