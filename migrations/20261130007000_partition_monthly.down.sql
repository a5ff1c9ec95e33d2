-- Back to one unpartitioned table each for usage_records, credit_transactions and events, with their rows,
-- their sequences' positions and the unique keys they had before (see the .up.sql).
DROP TRIGGER events_expiring_once ON events;
DROP TRIGGER usage_records_session_once ON usage_records;
DROP TRIGGER usage_records_session_fixed ON usage_records;
DROP TRIGGER usage_records_session_freed ON usage_records;
DROP FUNCTION acct_event_expiring_once();
DROP FUNCTION acct_usage_session_once();
DROP FUNCTION acct_partitions_ensure(integer, timestamptz);
ALTER TABLE webhook_deliveries DROP CONSTRAINT webhook_deliveries_event_fkey;
-- acct_usage_cost takes a usage_records row: it would follow the old table; the migrator re-creates it
-- (src/ledger/sql) right after the migrations.
DROP FUNCTION IF EXISTS acct_usage_cost(usage_records, model_prices);

DO $$
DECLARE
  t text;
  seq_value bigint;
  seq_called boolean;
BEGIN
  FOREACH t IN ARRAY ARRAY['usage_records', 'credit_transactions', 'events'] LOOP
    EXECUTE format('ALTER TABLE %I RENAME TO %I', t, t || '_partitioned');
    EXECUTE format('ALTER SEQUENCE %I RENAME TO %I', t || '_id_seq', t || '_partitioned_id_seq');
    EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING IDENTITY)', t, t || '_partitioned');
    EXECUTE format('SELECT last_value, is_called FROM %I', t || '_partitioned_id_seq') INTO seq_value, seq_called;
    PERFORM setval(pg_get_serial_sequence(t, 'id'), seq_value, seq_called);
    EXECUTE format('INSERT INTO %I OVERRIDING SYSTEM VALUE SELECT * FROM %I', t, t || '_partitioned');
    -- DROP, not TRUNCATE: the ledger's partitions refuse TRUNCATE.
    EXECUTE format('DROP TABLE %I', t || '_partitioned');
  END LOOP;
END $$;

ALTER TABLE usage_records ADD CONSTRAINT usage_records_pkey PRIMARY KEY (id);
CREATE INDEX usage_records_created ON usage_records (created_at, id);
CREATE INDEX usage_records_rerate ON usage_records (user_id, model_id, price_version, created_at, id) WHERE model_id IS NOT NULL;
CREATE INDEX usage_records_unpaid ON usage_records (user_id, created_at, id) WHERE unpaid_credits > 0;
CREATE INDEX usage_records_user_created ON usage_records (user_id, created_at, id);
ALTER TABLE usage_records
  ADD CONSTRAINT usage_records_session_key UNIQUE (user_id, session_id),
  ADD CONSTRAINT usage_records_session_fkey FOREIGN KEY (user_id, session_id) REFERENCES streaming_sessions (user_id, id),
  ADD CONSTRAINT usage_records_user_id_fkey FOREIGN KEY (user_id) REFERENCES user_accounts (id);

ALTER TABLE credit_transactions ADD CONSTRAINT credit_transactions_pkey PRIMARY KEY (id);
CREATE INDEX credit_transactions_allocation ON credit_transactions (allocation_id);
CREATE INDEX credit_transactions_expire_amount ON credit_transactions (created_at) INCLUDE (amount) WHERE type = 'expire';
CREATE INDEX credit_transactions_session ON credit_transactions (user_id, session_id) WHERE session_id IS NOT NULL;
CREATE INDEX credit_transactions_usage_record ON credit_transactions (usage_record_id) WHERE usage_record_id IS NOT NULL;
CREATE INDEX credit_transactions_user ON credit_transactions (user_id, id);
ALTER TABLE credit_transactions
  ADD CONSTRAINT credit_transactions_allocation_id_fkey FOREIGN KEY (allocation_id) REFERENCES credit_allocations (id),
  ADD CONSTRAINT credit_transactions_lot_owner_fkey FOREIGN KEY (allocation_id, user_id) REFERENCES credit_allocations (id, user_id),
  ADD CONSTRAINT credit_transactions_origin_allocation_id_fkey FOREIGN KEY (origin_allocation_id) REFERENCES credit_allocations (id),
  ADD CONSTRAINT credit_transactions_session_fkey FOREIGN KEY (user_id, session_id) REFERENCES streaming_sessions (user_id, id);
CREATE TRIGGER credit_transactions_append_only BEFORE UPDATE OR DELETE ON credit_transactions
  FOR EACH ROW EXECUTE FUNCTION acct_ledger_is_append_only();
CREATE TRIGGER credit_transactions_no_truncate BEFORE TRUNCATE ON credit_transactions
  FOR EACH STATEMENT EXECUTE FUNCTION acct_ledger_is_append_only();

ALTER TABLE events ADD CONSTRAINT events_pkey PRIMARY KEY (id);
CREATE INDEX events_created_at ON events (created_at);
CREATE INDEX events_not_fanned_out ON events (id) WHERE NOT fanned_out;
CREATE INDEX events_txid_id ON events (txid, id);
CREATE INDEX events_user_txid_id ON events (user_id, txid, id);
CREATE UNIQUE INDEX events_expiring_once ON events ((data->>'allocationId')) WHERE type = 'credits.expiring';

ALTER TABLE webhook_deliveries DROP COLUMN event_created_at;
ALTER TABLE webhook_deliveries ADD CONSTRAINT webhook_deliveries_event_id_fkey
  FOREIGN KEY (event_id) REFERENCES events (id) ON DELETE CASCADE;
ALTER TABLE credit_allocations DROP COLUMN expiring_event_id;
ALTER TABLE streaming_sessions DROP COLUMN usage_record_id;
