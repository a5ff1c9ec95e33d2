DROP INDEX IF EXISTS usage_records_rerate;
