-- Issue 12: constraints the review found missing. The database is the last line of defence: each one turns a
-- bug that would corrupt the books into a failed statement. Added NOT VALID, then validated against the data.

-- Ledger rows and hold legs belong to their lot's owner (composite foreign keys; reconcile's
-- foreign_entries check becomes impossible to trip).
ALTER TABLE credit_allocations ADD CONSTRAINT credit_allocations_id_user_key UNIQUE (id, user_id);
ALTER TABLE credit_transactions ADD CONSTRAINT credit_transactions_lot_owner_fkey
  FOREIGN KEY (allocation_id, user_id) REFERENCES credit_allocations (id, user_id) NOT VALID;
ALTER TABLE credit_transactions VALIDATE CONSTRAINT credit_transactions_lot_owner_fkey;
ALTER TABLE session_holds ADD CONSTRAINT session_holds_lot_owner_fkey
  FOREIGN KEY (allocation_id, user_id) REFERENCES credit_allocations (id, user_id) NOT VALID;
ALTER TABLE session_holds VALIDATE CONSTRAINT session_holds_lot_owner_fkey;

-- Every type that moves credits of a lot names the lot.
ALTER TABLE credit_transactions ADD CONSTRAINT credit_transactions_lot_required
  CHECK (allocation_id IS NOT NULL OR type NOT IN ('grant', 'hold', 'capture', 'release', 'charge', 'expire')) NOT VALID;
ALTER TABLE credit_transactions VALIDATE CONSTRAINT credit_transactions_lot_required;

-- Session amounts that can only be true together.
ALTER TABLE streaming_sessions ADD CONSTRAINT streaming_sessions_refund_within_hold
  CHECK (refunded_credits IS NULL OR refunded_credits <= allocated_credits) NOT VALID;
ALTER TABLE streaming_sessions ADD CONSTRAINT streaming_sessions_unpaid_within_used
  CHECK (unpaid_credits <= coalesce(used_credits, 0)) NOT VALID;
ALTER TABLE streaming_sessions ADD CONSTRAINT streaming_sessions_ended_has_cost
  CHECK (ended_at IS NULL OR used_credits IS NOT NULL) NOT VALID;
ALTER TABLE streaming_sessions VALIDATE CONSTRAINT streaming_sessions_refund_within_hold;
ALTER TABLE streaming_sessions VALIDATE CONSTRAINT streaming_sessions_unpaid_within_used;
ALTER TABLE streaming_sessions VALIDATE CONSTRAINT streaming_sessions_ended_has_cost;

-- Rollups never go negative.
ALTER TABLE usage_daily ADD CONSTRAINT usage_daily_non_negative
  CHECK (requests >= 0 AND credits >= 0 AND unpaid_credits >= 0 AND input_tokens >= 0 AND output_tokens >= 0
         AND cached_input_tokens >= 0);
-- The derived rollups (usage_daily_system, usage_user_daily/weekly, usage_totals) are folded with
-- INSERT ... ON CONFLICT DO UPDATE of signed deltas: PostgreSQL checks a CHECK against the proposed insert row
-- (a negative delta) before it finds the conflict, so they cannot carry this CHECK. They are derived from
-- usage_daily by one trigger, which is checked here.

-- The ledger is append-only: TRUNCATE (which row triggers do not see) is refused too.
CREATE TRIGGER credit_transactions_no_truncate BEFORE TRUNCATE ON credit_transactions
  FOR EACH STATEMENT EXECUTE FUNCTION acct_ledger_is_append_only();
