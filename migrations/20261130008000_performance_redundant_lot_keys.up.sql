-- Issue 19: every ledger row and hold leg that names a lot was checked twice, once by (allocation_id) ->
-- credit_allocations (id) and once by the composite (allocation_id, user_id) -> credit_allocations (id, user_id)
-- of migration 20261129100500. user_id is NOT NULL in both tables, so the composite key already proves the lot
-- exists, and it refuses deleting a referenced lot just the same (both NO ACTION). The single-column keys cost
-- one more lookup with a row lock per row written (four per initialize->finalize flow) and guard nothing more.
ALTER TABLE credit_transactions DROP CONSTRAINT credit_transactions_allocation_id_fkey;
ALTER TABLE session_holds DROP CONSTRAINT session_holds_allocation_id_fkey;
