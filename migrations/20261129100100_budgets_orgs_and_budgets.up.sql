-- Organizations and budgets (issue 14, docs/budgets.md). Budgets are caps, not money: they never move
-- credits. One counter row per (budget, period start) keeps what was spent and what active sessions hold
-- in that calendar period; a period's row is created on first use, so periods roll over by the clock alone.
ALTER TABLE user_accounts ADD COLUMN org_id text;
CREATE INDEX user_accounts_org_id_idx ON user_accounts (org_id) WHERE org_id IS NOT NULL;

CREATE TABLE budgets (
  id            bigserial PRIMARY KEY,
  user_id       text,
  org_id        text,
  period        text NOT NULL CHECK (period IN ('day', 'week', 'month')),
  limit_credits bigint NOT NULL CHECK (limit_credits >= 0),
  model_id      text,
  timezone      text NOT NULL DEFAULT 'UTC',
  created_by    text,
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT budgets_one_scope CHECK ((user_id IS NULL) <> (org_id IS NULL))
);
CREATE INDEX budgets_user_id_idx ON budgets (user_id) WHERE user_id IS NOT NULL;
CREATE INDEX budgets_org_id_idx ON budgets (org_id) WHERE org_id IS NOT NULL;

CREATE TABLE budget_counters (
  budget_id     bigint NOT NULL REFERENCES budgets (id) ON DELETE CASCADE,
  period_start  timestamptz NOT NULL,
  spent_credits bigint NOT NULL DEFAULT 0 CHECK (spent_credits >= 0),
  held_credits  bigint NOT NULL DEFAULT 0 CHECK (held_credits >= 0),
  PRIMARY KEY (budget_id, period_start)
);

-- What one session or one usage record put on one budget's counter: the held part while the session is
-- active, and what it spent. Settling, expiring, a late finalize and refunds find their counter rows here,
-- so they update the period the spend belongs to; reconcile sums these rows against the counters.
-- No foreign key to sessions or records: budgets must not constrain how those tables evolve.
CREATE TABLE budget_charges (
  id              bigserial PRIMARY KEY,
  budget_id       bigint NOT NULL,
  period_start    timestamptz NOT NULL,
  user_id         text NOT NULL,
  session_id      text,
  usage_record_id bigint,
  held_credits    bigint NOT NULL DEFAULT 0 CHECK (held_credits >= 0),
  spent_credits   bigint NOT NULL DEFAULT 0 CHECK (spent_credits >= 0),
  created_at      timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT budget_charges_one_source CHECK ((session_id IS NULL) <> (usage_record_id IS NULL)),
  FOREIGN KEY (budget_id, period_start) REFERENCES budget_counters (budget_id, period_start) ON DELETE CASCADE
);
CREATE INDEX budget_charges_session_idx ON budget_charges (user_id, session_id) WHERE session_id IS NOT NULL;
CREATE INDEX budget_charges_record_idx ON budget_charges (usage_record_id) WHERE usage_record_id IS NOT NULL;
CREATE INDEX budget_charges_counter_idx ON budget_charges (budget_id, period_start);
