-- acct_event_expiring_once: current definition (first created in migrations/20261130007000_partition_monthly.up.sql).
-- One credits.expiring notice per lot. events is partitioned by month, and a unique index of a partitioned
-- table must contain the partition key, so the old unique index events_expiring_once became this row
-- trigger: inserting a credits.expiring event claims credit_allocations.expiring_event_id of its lot
-- (data->>'allocationId'), in the same transaction, only while it is NULL (or already this event). A second
-- notice for the lot is refused with unique_violation on "events_expiring_once", as before; two at once
-- queue on the lot's row and the second is refused. A notice must name an existing lot.
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
