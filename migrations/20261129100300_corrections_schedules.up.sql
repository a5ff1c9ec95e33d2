-- Recurring grants (issue 16). A schedule grants `credits` to a user once per calendar period (day, week
-- starting Monday, month) of an IANA time zone. Exactly once per (schedule, period), however many instances
-- run: the primary key of credit_schedule_grants, inserted in the same transaction as the grant.
CREATE TABLE credit_schedules (
  id                      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  user_id                 text NOT NULL REFERENCES user_accounts (id),
  credits                 bigint NOT NULL CHECK (credits > 0),
  period                  text NOT NULL CHECK (period IN ('day', 'week', 'month')),
  timezone                text NOT NULL,
  expire_at_period_end    boolean NOT NULL DEFAULT false,
  expires_in_days         integer CHECK (expires_in_days > 0),
  rollover_cap_credits    bigint CHECK (rollover_cap_credits >= 0),
  start_at                timestamptz NOT NULL,
  -- Start of the next period to grant (in the schedule's zone); advanced in the grant's transaction.
  next_period_start       timestamptz NOT NULL,
  created_by              text NOT NULL,
  created_at              timestamptz NOT NULL DEFAULT now(),
  deleted_at              timestamptz,
  CONSTRAINT credit_schedules_one_expiry CHECK (NOT (expire_at_period_end AND expires_in_days IS NOT NULL))
);
CREATE INDEX credit_schedules_due ON credit_schedules (next_period_start) WHERE deleted_at IS NULL;
CREATE INDEX credit_schedules_user ON credit_schedules (user_id, id);

CREATE TABLE credit_schedule_grants (
  schedule_id    bigint NOT NULL REFERENCES credit_schedules (id),
  period_start   timestamptz NOT NULL,
  period_end     timestamptz NOT NULL,
  allocation_id  bigint NOT NULL REFERENCES credit_allocations (id),
  created_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (schedule_id, period_start)
);
CREATE INDEX credit_schedule_grants_allocation ON credit_schedule_grants (allocation_id);
