-- Issue 12: sweepers isolated. An item (session, lot) whose expiry fails is retried with backoff instead of
-- being picked first again on every tick, blocking everything behind it. One row per failing item.
CREATE TABLE sweeper_backoff (
  job         text NOT NULL CHECK (job IN ('session_expiry', 'lot_expiry')),
  item        text NOT NULL,
  attempts    integer NOT NULL CHECK (attempts > 0),
  retry_at    timestamptz NOT NULL,
  last_error  text,
  updated_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (job, item)
);
