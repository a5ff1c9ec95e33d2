-- Fails while a model id longer than 128 characters exists (its prices would have to go first).
ALTER TABLE model_prices DROP CONSTRAINT model_prices_model_id_check,
  ADD CONSTRAINT model_prices_model_id_check CHECK (length(model_id) BETWEEN 1 AND 128);
