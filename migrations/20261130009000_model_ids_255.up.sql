-- Model ids are ids like the others (API.md, Conventions "Text"): 1-255 printable characters. They were
-- 1-128 of [A-Za-z0-9._:/-], which refused real provider ids such as Vertex AI's `claude-3-5-sonnet@20240620`.
-- Printability is checked at the edge (src/schemas/common.ts); the table keeps the length.
ALTER TABLE model_prices DROP CONSTRAINT model_prices_model_id_check,
  ADD CONSTRAINT model_prices_model_id_check CHECK (length(model_id) BETWEEN 1 AND 255);
