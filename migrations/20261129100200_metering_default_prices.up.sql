-- The shipped default price list with every token kind (issue 13): cache-write prices (Anthropic's 5-minute
-- and 1-hour cache writes) and explicit reasoning prices for reasoning models, plus current models.
-- Public list prices per 1M tokens in USD at 1 credit = 0.01 USD ($3.75 = 375 credits), in micro-credits.
-- NULL = no own price: billed at the parent kind's (cacheWrite1h -> cacheWrite -> input, reasoning -> output);
-- OpenAI and Gemini charge no cache-write premium, so their cache writes fall back to input.
--
-- A price version that may have billed something is never edited:
-- - a model whose only version is the untouched shipped one and that nothing has used yet (a fresh
--   install) gets the full prices on that version;
-- - a model still at a shipped version that has been used gets a new version (effective now);
-- - a model whose price an admin has set is left alone;
-- - models new to the list get version 1.
CREATE TEMPORARY TABLE default_prices_v2 (
  model_id text PRIMARY KEY, input bigint NOT NULL, output bigint NOT NULL, cached bigint NOT NULL,
  cache_write bigint, cache_write_1h bigint, reasoning bigint
) ON COMMIT DROP;

INSERT INTO default_prices_v2 (model_id, input, output, cached, cache_write, cache_write_1h, reasoning) VALUES
  ('gpt-4o',             250000000,  1000000000,  125000000,       NULL,       NULL,       NULL),
  ('gpt-4o-mini',         15000000,    60000000,    7500000,       NULL,       NULL,       NULL),
  ('gpt-4.1',            200000000,   800000000,   50000000,       NULL,       NULL,       NULL),
  ('gpt-4.1-mini',        40000000,   160000000,   10000000,       NULL,       NULL,       NULL),
  ('o3',                 200000000,   800000000,   50000000,       NULL,       NULL,  800000000),
  ('o4-mini',            110000000,   440000000,   27500000,       NULL,       NULL,  440000000),
  ('gpt-5',              125000000,  1000000000,   12500000,       NULL,       NULL, 1000000000),
  ('gpt-5-mini',          25000000,   200000000,    2500000,       NULL,       NULL,  200000000),
  ('claude-sonnet-4',    300000000,  1500000000,   30000000,  375000000,  600000000, 1500000000),
  ('claude-sonnet-4-5',  300000000,  1500000000,   30000000,  375000000,  600000000, 1500000000),
  ('claude-3-5-haiku',    80000000,   400000000,    8000000,  100000000,  160000000,       NULL),
  ('claude-haiku-4-5',   100000000,   500000000,   10000000,  125000000,  200000000,  500000000),
  ('claude-opus-4',     1500000000,  7500000000,  150000000, 1875000000, 3000000000, 7500000000),
  ('claude-opus-4-1',   1500000000,  7500000000,  150000000, 1875000000, 3000000000, 7500000000),
  ('gemini-2.5-pro',     125000000,  1000000000,   31000000,       NULL,       NULL, 1000000000),
  ('gemini-2.5-flash',    30000000,   250000000,    7500000,       NULL,       NULL,  250000000),
  ('gemini-2.0-flash',    10000000,    40000000,    2500000,       NULL,       NULL,       NULL);

-- Fresh installs: fill in the shipped version 1 of models nothing has used.
UPDATE model_prices p
   SET input_price_per_1m = d.input, output_price_per_1m = d.output, cached_input_price_per_1m = d.cached,
       cache_write_price_per_1m = d.cache_write, cache_write_1h_price_per_1m = d.cache_write_1h,
       reasoning_price_per_1m = d.reasoning
  FROM default_prices_v2 d
 WHERE p.model_id = d.model_id AND p.created_by = 'default-price-list'
   AND NOT EXISTS (SELECT 1 FROM model_prices o WHERE o.model_id = p.model_id AND o.price_version <> p.price_version)
   AND NOT EXISTS (SELECT 1 FROM usage_records r WHERE r.model_id = p.model_id)
   AND NOT EXISTS (SELECT 1 FROM streaming_sessions s WHERE s.model_id = p.model_id);

-- Used models still at a shipped version: a new version, unless it already says the same.
INSERT INTO model_prices (model_id, price_version, input_price_per_1m, output_price_per_1m, cached_input_price_per_1m,
                          cache_write_price_per_1m, cache_write_1h_price_per_1m, reasoning_price_per_1m, created_by)
SELECT d.model_id, latest.price_version + 1, d.input, d.output, d.cached, d.cache_write, d.cache_write_1h, d.reasoning,
       'default-price-list'
  FROM default_prices_v2 d
  JOIN LATERAL (SELECT * FROM model_prices p WHERE p.model_id = d.model_id ORDER BY p.price_version DESC LIMIT 1) latest ON true
 WHERE latest.created_by = 'default-price-list'
   AND (latest.input_price_per_1m, latest.output_price_per_1m, latest.cached_input_price_per_1m,
        latest.cache_write_price_per_1m, latest.cache_write_1h_price_per_1m, latest.reasoning_price_per_1m)
       IS DISTINCT FROM (d.input, d.output, d.cached, d.cache_write, d.cache_write_1h, d.reasoning);

-- Models new to the list.
INSERT INTO model_prices (model_id, price_version, input_price_per_1m, output_price_per_1m, cached_input_price_per_1m,
                          cache_write_price_per_1m, cache_write_1h_price_per_1m, reasoning_price_per_1m, created_by)
SELECT d.model_id, 1, d.input, d.output, d.cached, d.cache_write, d.cache_write_1h, d.reasoning, 'default-price-list'
  FROM default_prices_v2 d
 WHERE NOT EXISTS (SELECT 1 FROM model_prices p WHERE p.model_id = d.model_id);
