-- Incremental reconcile (issue 18, docs/credits.md "Reconcile"). A run checks only the users whose rows
-- changed since the last clean run; these tables say since when, and which users a row's xmin cannot name.

-- The last clean run (full or incremental): the oldest transaction still running when it took its snapshot
-- (pg_snapshot_xmin as a 64-bit xid8, stored as bigint) and when. One row; it only ever moves forward.
CREATE TABLE reconcile_checkpoints (
  id smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
  snapshot_xmin bigint NOT NULL CHECK (snapshot_xmin > 0),
  taken_at timestamptz NOT NULL,
  mode text NOT NULL CHECK (mode IN ('full', 'incremental')),
  checked_users bigint NOT NULL CHECK (checked_users >= 0),
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- Users and budgets every incremental run checks until a clean run has checked them: those a delete touched
-- (a deleted row leaves no xmin behind) and those a run found a discrepancy in (so a difference that a full
-- run found is not forgotten by the next incremental run).
CREATE TABLE reconcile_dirty (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  user_id text,
  budget_id bigint,
  reason text NOT NULL CHECK (reason IN ('deleted', 'discrepancy', 'truncated')),
  noted_at timestamptz NOT NULL DEFAULT now(),
  -- 'truncated' names no one: every incremental run is a full one until a clean full run has seen it.
  CHECK ((user_id IS NULL AND budget_id IS NULL) = (reason = 'truncated'))
);

-- Deleting a hold leg or a budget charge changes what reconcile finds without leaving a row behind: note
-- the user (and the budget). Deleting other rows cannot hide a difference: ledger rows cannot be deleted
-- (acct_ledger_is_append_only), lots and sessions with ledger rows or legs are held by foreign keys, and a
-- usage record's checks start from the record. A TRUNCATE of either table notes 'truncated': incremental
-- runs are full ones until a clean full run has seen it (a run that started before the TRUNCATE may still
-- move the checkpoint, so the checkpoint itself is not the place to say it).
CREATE FUNCTION acct_reconcile_note_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'TRUNCATE' THEN
    INSERT INTO reconcile_dirty (reason) VALUES ('truncated');
  ELSIF TG_TABLE_NAME = 'budget_charges' THEN
    INSERT INTO reconcile_dirty (user_id, budget_id, reason) SELECT DISTINCT o.user_id, o.budget_id, 'deleted' FROM gone o;
  ELSE
    INSERT INTO reconcile_dirty (user_id, reason) SELECT DISTINCT o.user_id, 'deleted' FROM gone o;
  END IF;
  RETURN NULL;
END $$;

CREATE TRIGGER session_holds_reconcile_delete AFTER DELETE ON session_holds
  REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION acct_reconcile_note_delete();
CREATE TRIGGER session_holds_reconcile_truncate AFTER TRUNCATE ON session_holds
  FOR EACH STATEMENT EXECUTE FUNCTION acct_reconcile_note_delete();
CREATE TRIGGER budget_charges_reconcile_delete AFTER DELETE ON budget_charges
  REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION acct_reconcile_note_delete();
CREATE TRIGGER budget_charges_reconcile_truncate AFTER TRUNCATE ON budget_charges
  FOR EACH STATEMENT EXECUTE FUNCTION acct_reconcile_note_delete();
