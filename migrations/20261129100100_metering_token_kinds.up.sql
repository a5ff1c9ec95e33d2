-- LLM-true metering (issue 13): every token kind gets its own price and its own counters.
-- Prices: a NULL kind price means "billed at its parent's price" (cacheWrite1h -> cacheWrite -> input,
-- reasoning -> output); cached_input_price_per_1m already falls back to input when it is written.
ALTER TABLE model_prices
  ADD COLUMN cache_write_price_per_1m     bigint CHECK (cache_write_price_per_1m >= 0),
  ADD COLUMN cache_write_1h_price_per_1m  bigint CHECK (cache_write_1h_price_per_1m >= 0),
  ADD COLUMN reasoning_price_per_1m       bigint CHECK (reasoning_price_per_1m >= 0);
-- Versions are looked up by the time they take effect (sessions: initialize; usage: occurredAt).
CREATE INDEX model_prices_effective ON model_prices (model_id, effective_from DESC, price_version DESC);

-- Parts of the two wholes: cache writes are parts of input_tokens, reasoning a part of output_tokens.
ALTER TABLE streaming_sessions
  ADD COLUMN cache_write_tokens     bigint CHECK (cache_write_tokens >= 0),
  ADD COLUMN cache_write_1h_tokens  bigint CHECK (cache_write_1h_tokens >= 0),
  ADD COLUMN reasoning_tokens       bigint CHECK (reasoning_tokens >= 0);

-- created_at of a usage record is when the usage happened (occurredAt, default now); recorded_at is
-- when the service wrote it (NULL for records written before this migration: the same as created_at).
ALTER TABLE usage_records
  ADD COLUMN cache_write_tokens     bigint NOT NULL DEFAULT 0 CHECK (cache_write_tokens >= 0),
  ADD COLUMN cache_write_1h_tokens  bigint NOT NULL DEFAULT 0 CHECK (cache_write_1h_tokens >= 0),
  ADD COLUMN reasoning_tokens       bigint NOT NULL DEFAULT 0 CHECK (reasoning_tokens >= 0),
  ADD COLUMN recorded_at            timestamptz DEFAULT now();

ALTER TABLE usage_daily
  ADD COLUMN cache_write_tokens     bigint NOT NULL DEFAULT 0,
  ADD COLUMN cache_write_1h_tokens  bigint NOT NULL DEFAULT 0,
  ADD COLUMN reasoning_tokens       bigint NOT NULL DEFAULT 0;

ALTER TABLE usage_daily_system
  ADD COLUMN cache_write_tokens     bigint NOT NULL DEFAULT 0,
  ADD COLUMN cache_write_1h_tokens  bigint NOT NULL DEFAULT 0,
  ADD COLUMN reasoning_tokens       bigint NOT NULL DEFAULT 0;
