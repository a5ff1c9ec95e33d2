ALTER TABLE session_holds ADD CONSTRAINT session_holds_allocation_id_fkey
  FOREIGN KEY (allocation_id) REFERENCES credit_allocations (id);
ALTER TABLE credit_transactions ADD CONSTRAINT credit_transactions_allocation_id_fkey
  FOREIGN KEY (allocation_id) REFERENCES credit_allocations (id);
