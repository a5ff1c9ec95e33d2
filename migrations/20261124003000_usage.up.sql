-- Usage: the one-round-trip "record and charge" primitive, and the rollups that keep statistics fast.
--
-- usage_daily (initial schema) is the per user x day x service x operation x model rollup, written by
-- acct_record_usage and by anyone who adjusts a record later (a late session finalize). The tables below
-- are derived from usage_daily by a trigger, so every writer of usage_daily keeps them right without
-- knowing they exist, in the same transaction:
--   usage_daily_system  day x model x shard   -> system totals, byModel and daily series
--   usage_user_daily    day x user            -> top users: the partial weeks at the ends of a range
--   usage_user_weekly   week x user           -> top users: the whole weeks (Monday..Sunday) inside it
--   usage_totals        shard                 -> all-time consumed and unpaid credits
-- Top users over 30 days thus read about 10 rows per active user instead of 30; the per-user tables
-- carry their figures in the primary key index (INCLUDE) so those reads are index-only scans.
-- The shard (hash of the user id, 16 ways) spreads system-wide counters over 16 rows so concurrent
-- records of different users rarely wait on the same row.

CREATE FUNCTION acct_usage_shard(p_user text) RETURNS smallint LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT (hashtext(p_user) & 15)::smallint
$$;

CREATE TABLE usage_daily_system (
  day                  date NOT NULL,
  model_id             text NOT NULL,
  shard                smallint NOT NULL,
  requests             bigint NOT NULL DEFAULT 0,
  credits              bigint NOT NULL DEFAULT 0,
  unpaid_credits       bigint NOT NULL DEFAULT 0,
  input_tokens         bigint NOT NULL DEFAULT 0,
  output_tokens        bigint NOT NULL DEFAULT 0,
  cached_input_tokens  bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (day, model_id, shard)
) WITH (fillfactor = 80);

CREATE TABLE usage_user_daily (
  day             date NOT NULL,
  user_id         text NOT NULL,
  requests        bigint NOT NULL DEFAULT 0,
  credits         bigint NOT NULL DEFAULT 0,
  unpaid_credits  bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (day, user_id) INCLUDE (requests, credits, unpaid_credits)
);

-- week is the Monday the week starts on (ISO weeks, UTC days).
CREATE TABLE usage_user_weekly (
  week            date NOT NULL CHECK (extract(isodow FROM week) = 1),
  user_id         text NOT NULL,
  requests        bigint NOT NULL DEFAULT 0,
  credits         bigint NOT NULL DEFAULT 0,
  unpaid_credits  bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (week, user_id) INCLUDE (requests, credits, unpaid_credits)
);

CREATE TABLE usage_totals (
  shard           smallint PRIMARY KEY,
  requests        bigint NOT NULL DEFAULT 0,
  credits         bigint NOT NULL DEFAULT 0,
  unpaid_credits  bigint NOT NULL DEFAULT 0
);

-- Adds signed amounts for one (user, day, model) to the derived rollups.
CREATE FUNCTION acct_usage_fold(p_user text, p_day date, p_model text, p_requests bigint, p_credits bigint,
                                p_unpaid bigint, p_input bigint, p_output bigint, p_cached bigint)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  s smallint := acct_usage_shard(p_user);
BEGIN
  INSERT INTO usage_daily_system AS t (day, model_id, shard, requests, credits, unpaid_credits, input_tokens,
                                       output_tokens, cached_input_tokens)
  VALUES (p_day, p_model, s, p_requests, p_credits, p_unpaid, p_input, p_output, p_cached)
  ON CONFLICT (day, model_id, shard) DO UPDATE
     SET requests = t.requests + EXCLUDED.requests,
         credits = t.credits + EXCLUDED.credits,
         unpaid_credits = t.unpaid_credits + EXCLUDED.unpaid_credits,
         input_tokens = t.input_tokens + EXCLUDED.input_tokens,
         output_tokens = t.output_tokens + EXCLUDED.output_tokens,
         cached_input_tokens = t.cached_input_tokens + EXCLUDED.cached_input_tokens;
  INSERT INTO usage_user_daily AS t (day, user_id, requests, credits, unpaid_credits)
  VALUES (p_day, p_user, p_requests, p_credits, p_unpaid)
  ON CONFLICT (day, user_id) DO UPDATE
     SET requests = t.requests + EXCLUDED.requests,
         credits = t.credits + EXCLUDED.credits,
         unpaid_credits = t.unpaid_credits + EXCLUDED.unpaid_credits;
  INSERT INTO usage_user_weekly AS t (week, user_id, requests, credits, unpaid_credits)
  VALUES (p_day - (extract(isodow FROM p_day)::int - 1), p_user, p_requests, p_credits, p_unpaid)
  ON CONFLICT (week, user_id) DO UPDATE
     SET requests = t.requests + EXCLUDED.requests,
         credits = t.credits + EXCLUDED.credits,
         unpaid_credits = t.unpaid_credits + EXCLUDED.unpaid_credits;
  INSERT INTO usage_totals AS t (shard, requests, credits, unpaid_credits)
  VALUES (s, p_requests, p_credits, p_unpaid)
  ON CONFLICT (shard) DO UPDATE
     SET requests = t.requests + EXCLUDED.requests,
         credits = t.credits + EXCLUDED.credits,
         unpaid_credits = t.unpaid_credits + EXCLUDED.unpaid_credits;
END $$;

-- Propagates every change of usage_daily (insert, upsert, later delta adjustments, deletes) to the
-- derived rollups. A bulk loader that builds the derived rollups itself (scripts/seed-usage.ts) sets
-- acct.bulk_rollup = 'on' for its transaction to skip this.
CREATE FUNCTION acct_usage_daily_propagate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF current_setting('acct.bulk_rollup', true) = 'on' THEN
    RETURN NULL;
  END IF;
  IF TG_OP = 'UPDATE' AND OLD.user_id = NEW.user_id AND OLD.day = NEW.day AND OLD.model_id = NEW.model_id THEN
    PERFORM acct_usage_fold(NEW.user_id, NEW.day, NEW.model_id, NEW.requests - OLD.requests,
                            NEW.credits - OLD.credits, NEW.unpaid_credits - OLD.unpaid_credits,
                            NEW.input_tokens - OLD.input_tokens, NEW.output_tokens - OLD.output_tokens,
                            NEW.cached_input_tokens - OLD.cached_input_tokens);
    RETURN NULL;
  END IF;
  IF TG_OP IN ('UPDATE', 'DELETE') THEN
    PERFORM acct_usage_fold(OLD.user_id, OLD.day, OLD.model_id, -OLD.requests, -OLD.credits, -OLD.unpaid_credits,
                            -OLD.input_tokens, -OLD.output_tokens, -OLD.cached_input_tokens);
  END IF;
  IF TG_OP IN ('UPDATE', 'INSERT') THEN
    PERFORM acct_usage_fold(NEW.user_id, NEW.day, NEW.model_id, NEW.requests, NEW.credits, NEW.unpaid_credits,
                            NEW.input_tokens, NEW.output_tokens, NEW.cached_input_tokens);
  END IF;
  RETURN NULL;
END $$;

CREATE TRIGGER usage_daily_propagate AFTER INSERT OR UPDATE OR DELETE ON usage_daily
  FOR EACH ROW EXECUTE FUNCTION acct_usage_daily_propagate();

-- Anything already recorded before this migration.
INSERT INTO usage_daily_system (day, model_id, shard, requests, credits, unpaid_credits, input_tokens, output_tokens,
                                cached_input_tokens)
SELECT day, model_id, acct_usage_shard(user_id), sum(requests), sum(credits), sum(unpaid_credits), sum(input_tokens),
       sum(output_tokens), sum(cached_input_tokens)
  FROM usage_daily GROUP BY 1, 2, 3;
INSERT INTO usage_user_daily (day, user_id, requests, credits, unpaid_credits)
SELECT day, user_id, sum(requests), sum(credits), sum(unpaid_credits) FROM usage_daily GROUP BY 1, 2;
INSERT INTO usage_user_weekly (week, user_id, requests, credits, unpaid_credits)
SELECT day - (extract(isodow FROM day)::int - 1), user_id, sum(requests), sum(credits), sum(unpaid_credits)
  FROM usage_daily GROUP BY 1, 2;
INSERT INTO usage_totals (shard, requests, credits, unpaid_credits)
SELECT acct_usage_shard(user_id), sum(requests), sum(credits), sum(unpaid_credits) FROM usage_daily GROUP BY 1;

-- Session counts per terminal status, sharded like the usage counters. Only status changes pay for it
-- (the WHEN clauses keep the trigger function from even being called otherwise); active sessions are
-- counted through the existing partial index streaming_sessions_active_expiry, which stays small.
CREATE TABLE session_status_counts (
  status    text NOT NULL,
  shard     smallint NOT NULL,
  sessions  bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (status, shard)
);

CREATE FUNCTION acct_session_status_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.status <> 'active' THEN
    INSERT INTO session_status_counts AS c (status, shard, sessions) VALUES (OLD.status, acct_usage_shard(OLD.id), -1)
    ON CONFLICT (status, shard) DO UPDATE SET sessions = c.sessions - 1;
  END IF;
  IF TG_OP IN ('UPDATE', 'INSERT') AND NEW.status <> 'active' THEN
    INSERT INTO session_status_counts AS c (status, shard, sessions) VALUES (NEW.status, acct_usage_shard(NEW.id), 1)
    ON CONFLICT (status, shard) DO UPDATE SET sessions = c.sessions + 1;
  END IF;
  RETURN NULL;
END $$;

CREATE TRIGGER streaming_sessions_count_insert AFTER INSERT ON streaming_sessions
  FOR EACH ROW WHEN (NEW.status <> 'active') EXECUTE FUNCTION acct_session_status_count();
CREATE TRIGGER streaming_sessions_count_update AFTER UPDATE OF status ON streaming_sessions
  FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION acct_session_status_count();
CREATE TRIGGER streaming_sessions_count_delete AFTER DELETE ON streaming_sessions
  FOR EACH ROW WHEN (OLD.status <> 'active') EXECUTE FUNCTION acct_session_status_count();

INSERT INTO session_status_counts (status, shard, sessions)
SELECT status, acct_usage_shard(id), count(*) FROM streaming_sessions WHERE status <> 'active' GROUP BY 1, 2;

-- Expired credits for system stats: a sum over this small partial index (expire rows grow with lots,
-- not with requests) instead of a scan of the ledger.
CREATE INDEX credit_transactions_expire_amount ON credit_transactions (created_at) INCLUDE (amount)
  WHERE type = 'expire';

-- Records usage and charges it in one round trip. Creates the user if unknown (usage that happened is
-- always recorded), locks the user row first, charges what the live lots cover (kind 'charge', ledger
-- rows linked to the record) and stores the rest as unpaid. Never fails for lack of credits.
-- p_credits is the full cost in micro-credits. Returns the record id and time, what was charged and
-- left unpaid, and the credits available afterwards.
CREATE FUNCTION acct_record_charged_usage(
  p_user text, p_service text, p_operation text, p_model text, p_price_version integer,
  p_input bigint, p_output bigint, p_cached bigint, p_credits bigint, p_metadata jsonb, p_actor text
) RETURNS TABLE (usage_record_id bigint, created_at timestamptz, charged_credits bigint, unpaid_credits bigint,
                 available_credits bigint)
LANGUAGE plpgsql AS $$
DECLARE
  available bigint;
  charged bigint;
  drawn bigint;
  new_id bigint;
BEGIN
  IF p_credits < 0 THEN
    RAISE EXCEPTION 'acct_record_charged_usage: negative credits %', p_credits;
  END IF;
  PERFORM 1 FROM user_accounts WHERE id = p_user FOR UPDATE;
  IF NOT FOUND THEN
    INSERT INTO user_accounts (id) VALUES (p_user) ON CONFLICT (id) DO NOTHING;
    PERFORM 1 FROM user_accounts WHERE id = p_user FOR UPDATE;
  END IF;
  -- With the user locked no other movement can change the lots, and now() is fixed for the transaction,
  -- so acct_draw sees exactly this availability.
  available := acct_available(p_user);
  charged := least(p_credits, available);
  new_id := acct_record_usage(p_user, NULL, p_service, p_operation, p_model, p_price_version, p_input, p_output,
                              p_cached, p_credits, charged, p_credits - charged, p_metadata, p_actor);
  drawn := acct_draw(p_user, charged, 'charge', NULL, new_id, p_actor);
  IF drawn <> charged THEN
    RAISE EXCEPTION 'acct_record_charged_usage: drew % of %', drawn, charged;
  END IF;
  RETURN QUERY SELECT new_id, r.created_at, charged, p_credits - charged, available - charged
                 FROM usage_records r WHERE r.id = new_id;
END $$;
