DELETE FROM model_prices WHERE price_version = 1 AND created_by = 'default-price-list';
