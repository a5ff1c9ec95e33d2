ALTER TABLE budget_counters DROP COLUMN threshold_level;
