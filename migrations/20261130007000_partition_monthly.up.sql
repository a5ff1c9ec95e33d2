-- Issue 18 "Partitioning": usage_records, credit_transactions and events become range-partitioned by month
-- of created_at (UTC), PostgreSQL declarative partitioning (docs/scaling.md "Partitions"). Existing rows are
-- moved into monthly partitions <table>_YYYY_MM covering every month that has data, last month and the
-- next three months; <table>_default takes anything outside them, so an insert never fails for want of a
-- partition. acct_partitions_ensure (defined here, current text in src/ledger/sql) makes the months ahead.
--
-- A unique key of a partitioned table must contain the partition key, so:
--   primary keys               (id) -> (id, created_at); ids still come from one identity sequence per table
--   usage_records_session_key  UNIQUE (user_id, session_id) -> streaming_sessions.usage_record_id, claimed by
--                              the trigger acct_usage_session_once (a second record of a session: 23505 as before)
--   events_expiring_once       unique index on data->>'allocationId' -> credit_allocations.expiring_event_id,
--                              claimed by the trigger acct_event_expiring_once
--   webhook_deliveries -> events  FK (event_id) -> FK (event_id, event_created_at) to events (id, created_at)

-- 1. The columns that carry the guarantees of the keys that go, filled from the data.
ALTER TABLE streaming_sessions ADD COLUMN usage_record_id bigint;
UPDATE streaming_sessions s SET usage_record_id = u.id
  FROM usage_records u WHERE u.user_id = s.user_id AND u.session_id = s.id;
ALTER TABLE credit_allocations ADD COLUMN expiring_event_id bigint;
UPDATE credit_allocations a SET expiring_event_id = e.id
  FROM events e WHERE e.type = 'credits.expiring' AND e.data->>'allocationId' = a.id::text;
ALTER TABLE webhook_deliveries ADD COLUMN event_created_at timestamptz;
UPDATE webhook_deliveries d SET event_created_at = e.created_at FROM events e WHERE e.id = d.event_id;
ALTER TABLE webhook_deliveries ALTER COLUMN event_created_at SET NOT NULL;
ALTER TABLE webhook_deliveries DROP CONSTRAINT webhook_deliveries_event_id_fkey;

-- acct_usage_cost takes a usage_records row: it would follow the old table; the migrator re-creates it
-- (src/ledger/sql) right after the migrations.
DROP FUNCTION IF EXISTS acct_usage_cost(usage_records, model_prices);

-- 2. Each table: the old one steps aside, the partitioned one takes its name, columns, defaults, CHECKs and
-- identity (the sequence goes on from the old one's value), its rows move, the old one is dropped.
DO $$
DECLARE
  t text;
  seq_value bigint;
  seq_called boolean;
BEGIN
  FOREACH t IN ARRAY ARRAY['usage_records', 'credit_transactions', 'events'] LOOP
    EXECUTE format('ALTER TABLE %I RENAME TO %I', t, t || '_unpartitioned');
    EXECUTE format('ALTER SEQUENCE %I RENAME TO %I', t || '_id_seq', t || '_unpartitioned_id_seq');
    EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING IDENTITY)
                      PARTITION BY RANGE (created_at)', t, t || '_unpartitioned');
    EXECUTE format('SELECT last_value, is_called FROM %I', t || '_unpartitioned_id_seq') INTO seq_value, seq_called;
    PERFORM setval(pg_get_serial_sequence(t, 'id'), seq_value, seq_called);
  END LOOP;
END $$;
DROP FUNCTION IF EXISTS acct_partitions_ensure(integer);
CREATE OR REPLACE FUNCTION acct_partitions_ensure(p_months_ahead integer, p_from timestamptz DEFAULT NULL)
RETURNS integer LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  t text;
  part text;
  m date;
  first_month date;
  last_month date;
  created integer := 0;
  locked boolean := false;
  misplaced boolean;
  grantee oid;
BEGIN
  IF p_months_ahead IS NULL OR p_months_ahead < 0 OR p_months_ahead > 120 THEN
    RAISE EXCEPTION 'acct_partitions_ensure: months ahead % is not within 0..120', p_months_ahead;
  END IF;
  first_month := date_trunc('month', coalesce(p_from, now() - interval '1 month') AT TIME ZONE 'UTC')::date;
  last_month := (date_trunc('month', now() AT TIME ZONE 'UTC') + make_interval(months => p_months_ahead))::date;
  IF first_month > last_month THEN
    first_month := last_month;
  END IF;
  FOREACH t IN ARRAY ARRAY['usage_records', 'credit_transactions', 'events'] LOOP
    CONTINUE WHEN NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = to_regclass(t) AND c.relkind = 'p');
    IF to_regclass(t || '_default') IS NULL THEN
      IF NOT locked THEN
        PERFORM pg_advisory_xact_lock(hashtext('acct_partitions_ensure'));
        locked := true;
      END IF;
      IF to_regclass(t || '_default') IS NULL THEN
        BEGIN
          EXECUTE format('CREATE TABLE %I PARTITION OF %I DEFAULT', t || '_default', t);
          created := created + 1;
        EXCEPTION WHEN duplicate_table THEN NULL;  -- another instance made it just now
        END;
      END IF;
    END IF;
    m := first_month;
    WHILE m <= last_month LOOP
      part := format('%s_%s', t, to_char(m, 'YYYY_MM'));
      IF to_regclass(part) IS NULL THEN
        IF NOT locked THEN
          PERFORM pg_advisory_xact_lock(hashtext('acct_partitions_ensure'));
          locked := true;
        END IF;
        IF to_regclass(part) IS NULL THEN
          EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I WHERE created_at >= $1 AND created_at < $2)', t || '_default')
             INTO misplaced USING (m::timestamp AT TIME ZONE 'UTC'), ((m + interval '1 month')::timestamp AT TIME ZONE 'UTC');
          IF misplaced THEN
            -- CREATE would fail on the default's rows of that month; they stay there (still read through the
            -- parent) and the operator moves them (docs/scaling.md "Partitions").
            RAISE WARNING 'acct_partitions_ensure: % not created, %_default has rows of that month', part, t;
            m := (m + interval '1 month')::date;
            CONTINUE;
          END IF;
          BEGIN
            EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)', part, t,
                           (m::timestamp AT TIME ZONE 'UTC'), ((m + interval '1 month')::timestamp AT TIME ZONE 'UTC'));
            created := created + 1;
          EXCEPTION WHEN duplicate_table THEN NULL;  -- another instance made it just now
          END;
        END IF;
      END IF;
      m := (m + interval '1 month')::date;
    END LOOP;
  END LOOP;
  IF created > 0 THEN
    -- Partitions are reached through their parents only; the ledger's partitions refuse TRUNCATE.
    FOR part, grantee IN
      SELECT DISTINCT c.relname, a.grantee
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid, aclexplode(c.relacl) a
       WHERE i.inhparent IN (to_regclass('usage_records'), to_regclass('credit_transactions'), to_regclass('events'))
         AND a.grantee <> c.relowner
    LOOP
      EXECUTE format('REVOKE ALL ON %I FROM %s', part,
                     CASE WHEN grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(grantee)) END);
    END LOOP;
    FOR part IN
      SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
       WHERE i.inhparent = to_regclass('credit_transactions')
         AND NOT EXISTS (SELECT 1 FROM pg_trigger g WHERE g.tgrelid = c.oid AND g.tgname = 'credit_transactions_no_truncate')
    LOOP
      EXECUTE format('CREATE TRIGGER credit_transactions_no_truncate BEFORE TRUNCATE ON %I
                        FOR EACH STATEMENT EXECUTE FUNCTION acct_ledger_is_append_only()', part);
    END LOOP;
  END IF;
  RETURN created;
END $$;

-- Months with data (in any of the three tables), last month and three ahead.
SELECT acct_partitions_ensure(
         greatest(3, (SELECT (extract(year FROM age(date_trunc('month', max(m)), date_trunc('month', now()))) * 12
                            + extract(month FROM age(date_trunc('month', max(m)), date_trunc('month', now()))))::int
                        FROM (SELECT max(created_at) AS m FROM usage_records_unpartitioned
                              UNION ALL SELECT max(created_at) FROM credit_transactions_unpartitioned
                              UNION ALL SELECT max(created_at) FROM events_unpartitioned) AS x)),
         (SELECT min(m) FROM (SELECT min(created_at) AS m FROM usage_records_unpartitioned
                              UNION ALL SELECT min(created_at) FROM credit_transactions_unpartitioned
                              UNION ALL SELECT min(created_at) FROM events_unpartitioned) AS x));

INSERT INTO usage_records OVERRIDING SYSTEM VALUE SELECT * FROM usage_records_unpartitioned;
INSERT INTO credit_transactions OVERRIDING SYSTEM VALUE SELECT * FROM credit_transactions_unpartitioned;
INSERT INTO events OVERRIDING SYSTEM VALUE SELECT * FROM events_unpartitioned;
DROP TABLE usage_records_unpartitioned, credit_transactions_unpartitioned, events_unpartitioned;

-- 3. Keys, indexes, foreign keys and triggers, under their old names (created on every partition).
ALTER TABLE usage_records ADD CONSTRAINT usage_records_pkey PRIMARY KEY (id, created_at);
CREATE INDEX usage_records_created ON usage_records (created_at, id);
CREATE INDEX usage_records_rerate ON usage_records (user_id, model_id, price_version, created_at, id) WHERE model_id IS NOT NULL;
CREATE INDEX usage_records_session ON usage_records (user_id, session_id) WHERE session_id IS NOT NULL;
CREATE INDEX usage_records_unpaid ON usage_records (user_id, created_at, id) WHERE unpaid_credits > 0;
CREATE INDEX usage_records_user_created ON usage_records (user_id, created_at, id);
ALTER TABLE usage_records
  ADD CONSTRAINT usage_records_session_fkey FOREIGN KEY (user_id, session_id) REFERENCES streaming_sessions (user_id, id),
  ADD CONSTRAINT usage_records_user_id_fkey FOREIGN KEY (user_id) REFERENCES user_accounts (id);

ALTER TABLE credit_transactions ADD CONSTRAINT credit_transactions_pkey PRIMARY KEY (id, created_at);
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

ALTER TABLE events ADD CONSTRAINT events_pkey PRIMARY KEY (id, created_at);
CREATE INDEX events_created_at ON events (created_at);
CREATE INDEX events_not_fanned_out ON events (id) WHERE NOT fanned_out;
CREATE INDEX events_txid_id ON events (txid, id);
CREATE INDEX events_user_txid_id ON events (user_id, txid, id);

ALTER TABLE webhook_deliveries ADD CONSTRAINT webhook_deliveries_event_fkey
  FOREIGN KEY (event_id, event_created_at) REFERENCES events (id, created_at) ON UPDATE CASCADE ON DELETE CASCADE;

-- The ledger stays append-only: row triggers on the parent are cloned onto every partition (present and
-- future); TRUNCATE of a partition is refused by its own trigger, which acct_partitions_ensure gave each
-- partition it made (above, and every new one later).
CREATE TRIGGER credit_transactions_append_only BEFORE UPDATE OR DELETE ON credit_transactions
  FOR EACH ROW EXECUTE FUNCTION acct_ledger_is_append_only();
CREATE TRIGGER credit_transactions_no_truncate BEFORE TRUNCATE ON credit_transactions
  FOR EACH STATEMENT EXECUTE FUNCTION acct_ledger_is_append_only();

CREATE OR REPLACE FUNCTION acct_usage_session_once() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    UPDATE streaming_sessions SET usage_record_id = NEW.id
     WHERE user_id = NEW.user_id AND id = NEW.session_id AND (usage_record_id IS NULL OR usage_record_id = NEW.id);
    IF NOT FOUND AND EXISTS (SELECT 1 FROM streaming_sessions WHERE user_id = NEW.user_id AND id = NEW.session_id) THEN
      RAISE EXCEPTION 'duplicate key value violates unique constraint "usage_records_session_key"'
        USING ERRCODE = 'unique_violation', CONSTRAINT = 'usage_records_session_key', TABLE = 'usage_records',
              DETAIL = format('Session %s of user %s already has a usage record.', NEW.session_id, NEW.user_id);
    END IF;
    RETURN NEW;
  ELSIF TG_OP = 'UPDATE' THEN
    RAISE EXCEPTION 'the session of usage record % cannot change', OLD.id USING ERRCODE = 'restrict_violation';
  ELSE
    UPDATE streaming_sessions SET usage_record_id = NULL
     WHERE user_id = OLD.user_id AND id = OLD.session_id AND usage_record_id = OLD.id;
    RETURN OLD;
  END IF;
END $$;
CREATE TRIGGER usage_records_session_once AFTER INSERT ON usage_records
  FOR EACH ROW WHEN (NEW.session_id IS NOT NULL) EXECUTE FUNCTION acct_usage_session_once();
CREATE TRIGGER usage_records_session_fixed BEFORE UPDATE OF user_id, session_id ON usage_records
  FOR EACH ROW WHEN (OLD.session_id IS DISTINCT FROM NEW.session_id OR OLD.user_id IS DISTINCT FROM NEW.user_id)
  EXECUTE FUNCTION acct_usage_session_once();
CREATE TRIGGER usage_records_session_freed AFTER DELETE ON usage_records
  FOR EACH ROW WHEN (OLD.session_id IS NOT NULL) EXECUTE FUNCTION acct_usage_session_once();

CREATE OR REPLACE FUNCTION acct_event_expiring_once() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  v_lot bigint;
BEGIN
  IF NEW.data->>'allocationId' !~ '^[0-9]{1,18}$' THEN
    RAISE EXCEPTION 'credits.expiring event % names no lot', NEW.id USING ERRCODE = 'foreign_key_violation';
  END IF;
  v_lot := (NEW.data->>'allocationId')::bigint;
  UPDATE credit_allocations SET expiring_event_id = NEW.id
   WHERE id = v_lot AND (expiring_event_id IS NULL OR expiring_event_id = NEW.id);
  IF NOT FOUND THEN
    IF EXISTS (SELECT 1 FROM credit_allocations WHERE id = v_lot) THEN
      RAISE EXCEPTION 'duplicate key value violates unique constraint "events_expiring_once"'
        USING ERRCODE = 'unique_violation', CONSTRAINT = 'events_expiring_once', TABLE = 'events',
              DETAIL = format('Lot %s already has its credits.expiring event.', v_lot);
    END IF;
    RAISE EXCEPTION 'credits.expiring event % names no lot %', NEW.id, v_lot USING ERRCODE = 'foreign_key_violation';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER events_expiring_once AFTER INSERT ON events
  FOR EACH ROW WHEN (NEW.type = 'credits.expiring') EXECUTE FUNCTION acct_event_expiring_once();
