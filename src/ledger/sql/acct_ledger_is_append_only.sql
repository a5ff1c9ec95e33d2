-- acct_ledger_is_append_only: current definition (first created in migrations/20261124000100_initial_schema.up.sql).
CREATE OR REPLACE FUNCTION acct_ledger_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'credit_transactions is append-only' USING ERRCODE = 'restrict_violation';
END $$;
