-- acct_usage_session_once: current definition (first created in migrations/20261130007000_partition_monthly.up.sql).
-- One usage record per session. usage_records is partitioned by month, and a unique key of a partitioned
-- table must contain the partition key, so the old UNIQUE (user_id, session_id) became this row trigger:
-- inserting a record of a session claims streaming_sessions.usage_record_id, in the same transaction,
-- only while it is NULL (or already this record). A second record of the session is refused with
-- unique_violation on "usage_records_session_key", as before; two at once queue on the session row and the
-- second is refused. A record's session cannot be changed; deleting a record frees its session again.
CREATE OR REPLACE FUNCTION acct_usage_session_once() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    UPDATE streaming_sessions SET usage_record_id = NEW.id
     WHERE user_id = NEW.user_id AND id = NEW.session_id AND (usage_record_id IS NULL OR usage_record_id = NEW.id);
    -- Two IFs, not one AND: PL/pgSQL would run the EXISTS query at every insert (issue 19).
    IF NOT FOUND THEN
      IF EXISTS (SELECT 1 FROM streaming_sessions WHERE user_id = NEW.user_id AND id = NEW.session_id) THEN
        RAISE EXCEPTION 'duplicate key value violates unique constraint "usage_records_session_key"'
          USING ERRCODE = 'unique_violation', CONSTRAINT = 'usage_records_session_key', TABLE = 'usage_records',
                DETAIL = format('Session %s of user %s already has a usage record.', NEW.session_id, NEW.user_id);
      END IF;
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
