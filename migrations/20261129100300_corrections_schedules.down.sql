DROP TABLE IF EXISTS credit_schedule_grants;
DROP TABLE IF EXISTS credit_schedules;
DROP FUNCTION IF EXISTS acct_schedule_grant_one(timestamptz, boolean);
DROP FUNCTION IF EXISTS acct_period_end(text, timestamptz, text);
