-- acct_session_status_count: current definition (first created in migrations/20261124003000_usage.up.sql).
-- Counts are non-negative (CHECK of migrations/20261130004217_hostile-input_rollup_checks), so a decrement is
-- an UPDATE, never an upsert (PostgreSQL would check the proposed -1 row against the CHECK before finding the
-- conflict); an increment updates in place and inserts only when the row is missing.
CREATE OR REPLACE FUNCTION acct_session_status_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.status <> 'active' THEN
    UPDATE session_status_counts SET sessions = sessions - 1 WHERE status = OLD.status AND shard = acct_usage_shard(OLD.id);
    IF NOT FOUND THEN
      -- A session counted in no row: a negative count, refused by the CHECK.
      INSERT INTO session_status_counts (status, shard, sessions) VALUES (OLD.status, acct_usage_shard(OLD.id), -1);
    END IF;
  END IF;
  IF TG_OP IN ('UPDATE', 'INSERT') AND NEW.status <> 'active' THEN
    LOOP
      UPDATE session_status_counts SET sessions = sessions + 1 WHERE status = NEW.status AND shard = acct_usage_shard(NEW.id);
      EXIT WHEN FOUND;
      INSERT INTO session_status_counts (status, shard, sessions) VALUES (NEW.status, acct_usage_shard(NEW.id), 1)
      ON CONFLICT DO NOTHING;
      EXIT WHEN FOUND;
    END LOOP;
  END IF;
  RETURN NULL;
END $$;
