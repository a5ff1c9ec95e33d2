DROP INDEX usage_records_unpaid;
