-- Re-rate (issue 16) picks a user's next batch of records of one model at one price version in a time range,
-- oldest first. Through (user_id, created_at, id) every batch walked past the records already re-rated in
-- that range (quadratic in a user's records, inside the batch's user lock); this index finds exactly the
-- records still to do. It also serves the re-rate's list of users and its dry run.
CREATE INDEX usage_records_rerate ON usage_records (model_id, price_version, user_id, created_at, id)
  WHERE model_id IS NOT NULL;
