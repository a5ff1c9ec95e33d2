-- budget.threshold events (docs/budgets.md): the highest level (0, 80 or 100 percent of the limit) a budget's
-- period has reached and announced. Kept on the period's counter row, so each level is announced once per
-- period and a new period starts again at 0 by the clock alone.
ALTER TABLE budget_counters
  ADD COLUMN threshold_level smallint NOT NULL DEFAULT 0 CHECK (threshold_level IN (0, 80, 100));
