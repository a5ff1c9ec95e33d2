-- Versions this list added to models that existed before it are kept (they may have billed usage);
-- only the kind prices it filled in on untouched shipped versions are cleared again.
UPDATE model_prices SET cache_write_price_per_1m = NULL, cache_write_1h_price_per_1m = NULL, reasoning_price_per_1m = NULL
 WHERE created_by = 'default-price-list' AND price_version = 1;
