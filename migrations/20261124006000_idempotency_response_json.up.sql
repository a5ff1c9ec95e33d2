-- A replay must return the first response as it was sent. jsonb reorders object keys (by length, then
-- bytes); json keeps the text exactly as stored.
ALTER TABLE idempotency_keys ALTER COLUMN response_body TYPE json USING response_body::json;
