DROP FUNCTION IF EXISTS acct_session_open_as(text, text, text, integer, bigint, bigint, bigint, bigint, text, integer, text, text, text);
DROP FUNCTION IF EXISTS acct_mirror_lock_user(text, text, text, text);
