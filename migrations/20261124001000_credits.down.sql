DROP INDEX IF EXISTS streaming_sessions_active_user;
DROP FUNCTION IF EXISTS acct_reconcile();
DROP FUNCTION IF EXISTS acct_expire_one_lot(timestamptz);
DROP FUNCTION IF EXISTS acct_allocate(text, bigint, timestamptz, integer, text, text);
DROP FUNCTION IF EXISTS acct_debit(text, bigint, text, boolean, text, bigint, text);
DROP FUNCTION IF EXISTS acct_signed_amount(text, bigint);
