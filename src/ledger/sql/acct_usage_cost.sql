-- acct_usage_cost: the cost in micro-credits of a usage record's tokens at a price version — the SQL twin of
-- costAt (src/services/price.service.ts); a change of the pricing formula must change both. Parts are taken
-- out of their wholes (uncached input = input - cache reads - cache writes - 1-hour cache writes; output -
-- reasoning), each kind priced at its own price or its parent's (cacheWrite1h -> cacheWrite -> input,
-- reasoning -> output), and the exact sum rounded up once.
CREATE OR REPLACE FUNCTION acct_usage_cost(u usage_records, p model_prices) RETURNS bigint LANGUAGE sql IMMUTABLE AS $$
  SELECT ceil((
      (u.input_tokens - u.cached_input_tokens - u.cache_write_tokens - u.cache_write_1h_tokens)::numeric * p.input_price_per_1m
    + u.cached_input_tokens::numeric * p.cached_input_price_per_1m
    + u.cache_write_tokens::numeric * coalesce(p.cache_write_price_per_1m, p.input_price_per_1m)
    + u.cache_write_1h_tokens::numeric * coalesce(p.cache_write_1h_price_per_1m, p.cache_write_price_per_1m, p.input_price_per_1m)
    + (u.output_tokens - u.reasoning_tokens)::numeric * p.output_price_per_1m
    + u.reasoning_tokens::numeric * coalesce(p.reasoning_price_per_1m, p.output_price_per_1m)
  ) / 1000000)::bigint
$$;
