-- Initial schema: accounts, credit lots, the append-only ledger, holds, usage and idempotency.
-- Every amount is a BIGINT count of micro-credits (1 credit = 1,000,000). Constraints here are the last
-- line of defence behind the services: a bug that would make a balance negative fails loudly instead.

CREATE TABLE user_accounts (
  id          text PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 255),
  email       text,
  username    text,
  role        text NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'supervisor', 'admin')),
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()
);

-- A lot of credits. remaining_credits is what can still be drawn; held, spent and expired credits have left it.
CREATE TABLE credit_allocations (
  id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  user_id            text NOT NULL REFERENCES user_accounts (id),
  total_credits      bigint NOT NULL CHECK (total_credits > 0),
  remaining_credits  bigint NOT NULL,
  expires_at         timestamptz,
  allocated_by       text NOT NULL,
  note               text,
  created_at         timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT credit_allocations_remaining_in_range CHECK (remaining_credits >= 0 AND remaining_credits <= total_credits)
);
-- Consumption order. No predicate on remaining_credits, so draws stay HOT updates.
CREATE INDEX credit_allocations_consumption_order ON credit_allocations (user_id, expires_at, id);
CREATE INDEX credit_allocations_expiry ON credit_allocations (expires_at) WHERE expires_at IS NOT NULL;

-- Versioned prices, in micro-credits per 1M tokens. A session keeps the version it started with.
CREATE TABLE model_prices (
  model_id                   text NOT NULL CHECK (length(model_id) BETWEEN 1 AND 128),
  price_version              integer NOT NULL CHECK (price_version > 0),
  input_price_per_1m         bigint NOT NULL CHECK (input_price_per_1m >= 0),
  output_price_per_1m        bigint NOT NULL CHECK (output_price_per_1m >= 0),
  cached_input_price_per_1m  bigint NOT NULL CHECK (cached_input_price_per_1m >= 0),
  effective_from             timestamptz NOT NULL DEFAULT now(),
  created_by                 text,
  PRIMARY KEY (model_id, price_version)
);

-- A streaming session is a hold (a pending transfer): it resolves exactly once.
CREATE TABLE streaming_sessions (
  id                       text PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 255),
  user_id                  text NOT NULL REFERENCES user_accounts (id),
  model_id                 text NOT NULL,
  price_version            integer NOT NULL,
  status                   text NOT NULL CHECK (status IN ('active', 'completed', 'aborted', 'expired')),
  estimated_input_tokens   bigint CHECK (estimated_input_tokens >= 0),
  estimated_output_tokens  bigint CHECK (estimated_output_tokens >= 0),
  estimated_credits        bigint NOT NULL CHECK (estimated_credits >= 0),
  allocated_credits        bigint NOT NULL CHECK (allocated_credits >= 0),
  used_credits             bigint CHECK (used_credits >= 0),
  refunded_credits         bigint CHECK (refunded_credits >= 0),
  unpaid_credits           bigint NOT NULL DEFAULT 0 CHECK (unpaid_credits >= 0),
  actual_input_tokens      bigint CHECK (actual_input_tokens >= 0),
  actual_output_tokens     bigint CHECK (actual_output_tokens >= 0),
  cached_input_tokens      bigint CHECK (cached_input_tokens >= 0),
  end_reason               text,
  request_hash             text NOT NULL,
  expires_at               timestamptz NOT NULL,
  ended_at                 timestamptz,
  created_at               timestamptz NOT NULL DEFAULT now(),
  updated_at               timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX streaming_sessions_active_expiry ON streaming_sessions (expires_at) WHERE status = 'active';
CREATE INDEX streaming_sessions_user_created ON streaming_sessions (user_id, created_at, id);

-- Hold legs: which lot gave how much to a hold, and what became of it.
CREATE TABLE session_holds (
  session_id        text NOT NULL REFERENCES streaming_sessions (id),
  allocation_id     bigint NOT NULL REFERENCES credit_allocations (id),
  user_id           text NOT NULL,
  held_credits      bigint NOT NULL CHECK (held_credits > 0),
  captured_credits  bigint NOT NULL DEFAULT 0 CHECK (captured_credits >= 0),
  released_credits  bigint NOT NULL DEFAULT 0 CHECK (released_credits >= 0),
  PRIMARY KEY (session_id, allocation_id),
  CONSTRAINT session_holds_resolved_within_held CHECK (captured_credits + released_credits <= held_credits)
);
CREATE INDEX session_holds_allocation ON session_holds (allocation_id);

CREATE TABLE usage_records (
  id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  user_id              text NOT NULL REFERENCES user_accounts (id),
  session_id           text UNIQUE REFERENCES streaming_sessions (id),
  service              text NOT NULL CHECK (length(service) BETWEEN 1 AND 100),
  operation            text NOT NULL CHECK (length(operation) BETWEEN 1 AND 100),
  model_id             text,
  price_version        integer,
  input_tokens         bigint NOT NULL DEFAULT 0 CHECK (input_tokens >= 0),
  output_tokens        bigint NOT NULL DEFAULT 0 CHECK (output_tokens >= 0),
  cached_input_tokens  bigint NOT NULL DEFAULT 0 CHECK (cached_input_tokens >= 0),
  credits              bigint NOT NULL CHECK (credits >= 0),
  charged_credits      bigint NOT NULL CHECK (charged_credits >= 0),
  unpaid_credits       bigint NOT NULL CHECK (unpaid_credits >= 0),
  metadata             jsonb,
  recorded_by          text,
  created_at           timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT usage_records_charged_plus_unpaid CHECK (charged_credits + unpaid_credits = credits)
);
CREATE INDEX usage_records_user_created ON usage_records (user_id, created_at, id);
CREATE INDEX usage_records_created ON usage_records (created_at, id);

-- Daily rollup kept in the same transaction as each usage record, so statistics cost grows with days,
-- not with records. model_id is '' for usage without a model.
CREATE TABLE usage_daily (
  user_id              text NOT NULL,
  day                  date NOT NULL,
  service              text NOT NULL,
  operation            text NOT NULL,
  model_id             text NOT NULL DEFAULT '',
  requests             bigint NOT NULL DEFAULT 0,
  credits              bigint NOT NULL DEFAULT 0,
  unpaid_credits       bigint NOT NULL DEFAULT 0,
  input_tokens         bigint NOT NULL DEFAULT 0,
  output_tokens        bigint NOT NULL DEFAULT 0,
  cached_input_tokens  bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (user_id, day, service, operation, model_id)
);
CREATE INDEX usage_daily_day ON usage_daily (day);

-- The ledger. amount is the size of the movement; the type says what it did to the lot's
-- remaining_credits: grant/release add, hold/charge/expire subtract, capture leaves it (held -> spent),
-- adjust adds its signed amount.
CREATE TABLE credit_transactions (
  id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  user_id          text NOT NULL,
  type             text NOT NULL CHECK (type IN ('grant', 'hold', 'capture', 'release', 'charge', 'expire', 'adjust')),
  amount           bigint NOT NULL,
  allocation_id    bigint REFERENCES credit_allocations (id),
  session_id       text,
  usage_record_id  bigint,
  actor_id         text,
  note             text,
  created_at       timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT credit_transactions_amount_sign CHECK (amount > 0 OR (type = 'adjust' AND amount <> 0))
);
CREATE INDEX credit_transactions_user ON credit_transactions (user_id, id);
CREATE INDEX credit_transactions_allocation ON credit_transactions (allocation_id);
CREATE INDEX credit_transactions_session ON credit_transactions (session_id) WHERE session_id IS NOT NULL;

CREATE FUNCTION acct_ledger_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'credit_transactions is append-only' USING ERRCODE = 'restrict_violation';
END $$;
CREATE TRIGGER credit_transactions_append_only BEFORE UPDATE OR DELETE ON credit_transactions
  FOR EACH ROW EXECUTE FUNCTION acct_ledger_is_append_only();

-- Stripe-style idempotency keys, scoped to the caller. A key is inserted in the same transaction as the
-- work it guards, so a crash rolls both back and a concurrent duplicate waits on the unique index.
CREATE TABLE idempotency_keys (
  caller_id        text NOT NULL,
  key              text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
  request_hash     text NOT NULL,
  response_status  integer NOT NULL,
  response_body    jsonb NOT NULL,
  created_at       timestamptz NOT NULL DEFAULT now(),
  expires_at       timestamptz NOT NULL,
  PRIMARY KEY (caller_id, key)
);
CREATE INDEX idempotency_keys_expires ON idempotency_keys (expires_at);

-- Ledger primitives. Callers must already hold the user's row lock (SELECT ... FOR UPDATE on
-- user_accounts): every money movement takes that lock first, then lots in consumption order, so one
-- user's movements are serialized and there is a single lock order.

-- Draws up to p_amount from the user's live lots, soonest expiry first, then no expiry, oldest first.
-- kind 'hold' also writes hold legs for p_session; kind 'charge' spends directly. Returns what was drawn,
-- which is less than p_amount only when the live lots do not cover it.
CREATE FUNCTION acct_draw(p_user text, p_amount bigint, p_kind text, p_session text, p_usage_record bigint, p_actor text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  lot record;
  take bigint;
  still_needed bigint := p_amount;
BEGIN
  IF p_kind NOT IN ('hold', 'charge') THEN
    RAISE EXCEPTION 'acct_draw: unknown kind %', p_kind;
  END IF;
  IF p_amount <= 0 THEN
    RETURN 0;
  END IF;
  FOR lot IN
    SELECT id, remaining_credits FROM credit_allocations
     WHERE user_id = p_user AND remaining_credits > 0 AND (expires_at IS NULL OR expires_at > now())
     ORDER BY expires_at NULLS LAST, id
       FOR UPDATE
  LOOP
    take := least(lot.remaining_credits, still_needed);
    UPDATE credit_allocations SET remaining_credits = remaining_credits - take
     WHERE id = lot.id AND remaining_credits >= take;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'acct_draw: lot % changed while locked', lot.id;
    END IF;
    INSERT INTO credit_transactions (user_id, type, amount, allocation_id, session_id, usage_record_id, actor_id)
    VALUES (p_user, p_kind, take, lot.id, p_session, p_usage_record, p_actor);
    IF p_kind = 'hold' THEN
      INSERT INTO session_holds (session_id, allocation_id, user_id, held_credits)
      VALUES (p_session, lot.id, p_user, take);
    END IF;
    still_needed := still_needed - take;
    EXIT WHEN still_needed = 0;
  END LOOP;
  RETURN p_amount - still_needed;
END $$;

-- Available credits: remaining in lots that have not expired. Expired lots never count, swept or not.
CREATE FUNCTION acct_available(p_user text) RETURNS bigint LANGUAGE sql STABLE AS $$
  SELECT coalesce(sum(remaining_credits), 0)::bigint FROM credit_allocations
   WHERE user_id = p_user AND remaining_credits > 0 AND (expires_at IS NULL OR expires_at > now())
$$;

-- Adds a lot and its grant row. Returns the new allocation id.
CREATE FUNCTION acct_grant(p_user text, p_amount bigint, p_expires_at timestamptz, p_actor text, p_note text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  new_id bigint;
BEGIN
  INSERT INTO credit_allocations (user_id, total_credits, remaining_credits, expires_at, allocated_by, note)
  VALUES (p_user, p_amount, p_amount, p_expires_at, p_actor, p_note)
  RETURNING id INTO new_id;
  INSERT INTO credit_transactions (user_id, type, amount, allocation_id, actor_id, note)
  VALUES (p_user, 'grant', p_amount, new_id, p_actor, p_note);
  RETURN new_id;
END $$;

-- Inserts one usage record and folds it into the daily rollup. Returns the record id.
CREATE FUNCTION acct_record_usage(
  p_user text, p_session text, p_service text, p_operation text, p_model text, p_price_version integer,
  p_input bigint, p_output bigint, p_cached bigint, p_credits bigint, p_charged bigint, p_unpaid bigint,
  p_metadata jsonb, p_recorded_by text
) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  new_id bigint;
  recorded_at timestamptz;
BEGIN
  INSERT INTO usage_records (user_id, session_id, service, operation, model_id, price_version, input_tokens,
                             output_tokens, cached_input_tokens, credits, charged_credits, unpaid_credits,
                             metadata, recorded_by)
  VALUES (p_user, p_session, p_service, p_operation, p_model, p_price_version, p_input, p_output, p_cached,
          p_credits, p_charged, p_unpaid, p_metadata, p_recorded_by)
  RETURNING id, created_at INTO new_id, recorded_at;
  INSERT INTO usage_daily AS d (user_id, day, service, operation, model_id, requests, credits, unpaid_credits,
                                input_tokens, output_tokens, cached_input_tokens)
  VALUES (p_user, (recorded_at AT TIME ZONE 'UTC')::date, p_service, p_operation, coalesce(p_model, ''), 1,
          p_credits, p_unpaid, p_input, p_output, p_cached)
  ON CONFLICT (user_id, day, service, operation, model_id) DO UPDATE
     SET requests = d.requests + 1,
         credits = d.credits + EXCLUDED.credits,
         unpaid_credits = d.unpaid_credits + EXCLUDED.unpaid_credits,
         input_tokens = d.input_tokens + EXCLUDED.input_tokens,
         output_tokens = d.output_tokens + EXCLUDED.output_tokens,
         cached_input_tokens = d.cached_input_tokens + EXCLUDED.cached_input_tokens;
  RETURN new_id;
END $$;
