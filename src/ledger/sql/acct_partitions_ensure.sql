-- acct_partitions_ensure: current definition (first created in migrations/20261130007000_partition_monthly.up.sql).
-- usage_records, credit_transactions and events are range-partitioned by month of created_at (UTC):
-- <table>_YYYY_MM holds [first of the month, first of the next), <table>_default anything else. This makes
-- the monthly partitions from p_from's month (NULL: last month) through p_months_ahead months after this
-- one, and the DEFAULT partitions, where missing; returns how many it created. Called at boot and by the
-- background job (docs/scaling.md "Partitions"), so every instance may run it at once: the creation is
-- serialised by a transaction-scoped advisory lock and each table is looked up again under it; with
-- nothing missing it only reads the catalog. A table that is not partitioned (a database migrated down
-- before the conversion) is skipped.
-- A month whose rows already sit in the DEFAULT partition (only when this did not run for months, or for
-- usage backdated before the first month) is not created: a WARNING says so, the rows stay readable through
-- the parent, and docs/scaling.md says how to move them.
-- Every partition is reached only through its parent: direct grants on a new partition (the owner's
-- default privileges) are revoked, and each credit_transactions partition refuses TRUNCATE itself (a
-- parent's statement trigger does not fire for a partition truncated directly).
-- SECURITY DEFINER: it runs as the owner of the schema, so the least-privilege app role can call it.
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
