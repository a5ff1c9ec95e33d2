-- Events (issue 15): a transactional outbox written by the ledger functions in the same transaction as the
-- movement it reports, plus webhook endpoints and their deliveries (sent by the background dispatcher,
-- never inside a money transaction).

CREATE TABLE events (
  id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  -- The writing transaction's id. Readers page in (txid, id) order and only show transactions older than
  -- every one still running, so a consumer's `after` cursor never skips an event that commits later.
  txid       bigint NOT NULL DEFAULT (pg_current_xact_id()::text::bigint),
  type       text NOT NULL,
  user_id    text,
  org_id     text,
  data       jsonb NOT NULL DEFAULT '{}'::jsonb,
  created_at timestamptz NOT NULL DEFAULT now(),
  -- Deliveries have been created for the endpoints subscribed when it was fanned out.
  fanned_out boolean NOT NULL DEFAULT false
);
CREATE INDEX events_txid_id ON events (txid, id);
CREATE INDEX events_user_txid_id ON events (user_id, txid, id);
CREATE INDEX events_not_fanned_out ON events (id) WHERE NOT fanned_out;
CREATE INDEX events_created_at ON events (created_at);
-- credits.expiring is sent once per lot: a second notice for the same allocation is a conflict.
CREATE UNIQUE INDEX events_expiring_once ON events ((data->>'allocationId')) WHERE type = 'credits.expiring';

-- Settings the ledger functions read: the low-balance thresholds (micro-credits), written by the service at
-- boot from LOW_BALANCE_THRESHOLDS. One row.
CREATE TABLE event_settings (
  id                     boolean PRIMARY KEY DEFAULT true CHECK (id),
  low_balance_thresholds bigint[] NOT NULL DEFAULT '{}',
  updated_at             timestamptz NOT NULL DEFAULT now()
);
INSERT INTO event_settings (id) VALUES (true);

-- "Once per crossing" state, kept with the user and changed under the user's row lock: the highest
-- threshold (or 1 micro-credit, "not empty") that available credits were at or above when last looked at.
CREATE TABLE user_event_state (
  user_id       text PRIMARY KEY REFERENCES user_accounts (id),
  balance_level bigint NOT NULL DEFAULT 0,
  updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE webhook_endpoints (
  id                   text PRIMARY KEY,
  url                  text NOT NULL,
  events               text[] NOT NULL,
  description          text,
  -- AES-256-GCM of the whsec_ secret under WEBHOOK_SECRET_KEY: a database dump alone cannot sign.
  secret_encrypted     text NOT NULL,
  enabled              boolean NOT NULL DEFAULT true,
  disabled_reason      text,
  consecutive_failures integer NOT NULL DEFAULT 0,
  created_by           text NOT NULL,
  created_at           timestamptz NOT NULL DEFAULT now(),
  updated_at           timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE webhook_deliveries (
  id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  endpoint_id      text NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
  event_id         bigint NOT NULL REFERENCES events (id) ON DELETE CASCADE,
  -- pending: due at next_attempt_at; delivering: claimed by a dispatcher until next_attempt_at (its lease);
  -- succeeded / failed: done.
  status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivering', 'succeeded', 'failed')),
  attempts         integer NOT NULL DEFAULT 0,
  next_attempt_at  timestamptz NOT NULL DEFAULT now(),
  last_status_code integer,
  last_error       text,
  created_at       timestamptz NOT NULL DEFAULT now(),
  delivered_at     timestamptz,
  UNIQUE (endpoint_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status IN ('pending', 'delivering');
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id);
CREATE INDEX webhook_deliveries_event ON webhook_deliveries (event_id);

CREATE TABLE webhook_attempts (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  delivery_id  bigint NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
  attempted_at timestamptz NOT NULL,
  status_code  integer,
  duration_ms  integer NOT NULL,
  error        text,
  success      boolean NOT NULL
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id, id);
