-- acct_debit served only a code path no request used (a direct charge or hold outside a session or a usage
-- record). Holds are drawn by the session-open function, charges by the usage-record and settle functions.
DROP FUNCTION IF EXISTS acct_debit(text, bigint, text, boolean, text, bigint, text);
DO $$
BEGIN
  IF to_regclass('repeatable_migrations') IS NOT NULL THEN
    DELETE FROM repeatable_migrations WHERE name = 'acct_debit';
  END IF;
END $$;
