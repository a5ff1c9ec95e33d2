DROP TRIGGER IF EXISTS budget_charges_reconcile_truncate ON budget_charges;
DROP TRIGGER IF EXISTS budget_charges_reconcile_delete ON budget_charges;
DROP TRIGGER IF EXISTS session_holds_reconcile_truncate ON session_holds;
DROP TRIGGER IF EXISTS session_holds_reconcile_delete ON session_holds;
DROP FUNCTION IF EXISTS acct_reconcile_note_delete();
DROP TABLE IF EXISTS reconcile_dirty;
DROP TABLE IF EXISTS reconcile_checkpoints;
