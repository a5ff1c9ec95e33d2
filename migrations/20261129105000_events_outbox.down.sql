DROP TABLE IF EXISTS webhook_attempts;
DROP TABLE IF EXISTS webhook_deliveries;
DROP TABLE IF EXISTS webhook_endpoints;
DROP TABLE IF EXISTS user_event_state;
DROP TABLE IF EXISTS event_settings;
DROP TABLE IF EXISTS events;
DROP FUNCTION IF EXISTS acct_event_emit(text, text, jsonb, text);
DROP FUNCTION IF EXISTS acct_event_balance(text);
DROP FUNCTION IF EXISTS acct_event_expiring(integer, integer);
