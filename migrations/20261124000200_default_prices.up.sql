-- The shipped default price list (version 1 of each model), loaded on first start.
-- Public list prices per 1M tokens in USD, converted at 1 credit = 0.01 USD (so $2.50 = 250 credits),
-- stored in micro-credits. PUT /api/models/:modelId adds newer versions; these rows stay.
INSERT INTO model_prices (model_id, price_version, input_price_per_1m, output_price_per_1m, cached_input_price_per_1m, created_by)
VALUES
  ('gpt-4o',             1,  250000000, 1000000000, 125000000, 'default-price-list'),
  ('gpt-4o-mini',        1,   15000000,   60000000,   7500000, 'default-price-list'),
  ('gpt-4.1',            1,  200000000,  800000000,  50000000, 'default-price-list'),
  ('gpt-4.1-mini',       1,   40000000,  160000000,  10000000, 'default-price-list'),
  ('o3',                 1,  200000000,  800000000,  50000000, 'default-price-list'),
  ('claude-sonnet-4',    1,  300000000, 1500000000,  30000000, 'default-price-list'),
  ('claude-3-5-haiku',   1,   80000000,  400000000,   8000000, 'default-price-list'),
  ('claude-opus-4',      1, 1500000000, 7500000000, 150000000, 'default-price-list'),
  ('gemini-2.5-pro',     1,  125000000, 1000000000,  31000000, 'default-price-list'),
  ('gemini-2.0-flash',   1,   10000000,   40000000,   2500000, 'default-price-list')
ON CONFLICT (model_id, price_version) DO NOTHING;
