-- acct_session_status_count: current definition (first created in migrations/20261124003000_usage.up.sql).
CREATE OR REPLACE FUNCTION acct_session_status_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.status <> 'active' THEN
    INSERT INTO session_status_counts AS c (status, shard, sessions) VALUES (OLD.status, acct_usage_shard(OLD.id), -1)
    ON CONFLICT (status, shard) DO UPDATE SET sessions = c.sessions - 1;
  END IF;
  IF TG_OP IN ('UPDATE', 'INSERT') AND NEW.status <> 'active' THEN
    INSERT INTO session_status_counts AS c (status, shard, sessions) VALUES (NEW.status, acct_usage_shard(NEW.id), 1)
    ON CONFLICT (status, shard) DO UPDATE SET sessions = c.sessions + 1;
  END IF;
  RETURN NULL;
END $$;
