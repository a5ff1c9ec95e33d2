-- Re-rate (issue 16) picks a user's next batch of records of one model at one price version in a time range,
-- oldest first. Through (user_id, created_at, id) or (created_at, id) every batch walked past the records
-- already re-rated in that range (quadratic in a user's records, inside the batch's user lock); this index
-- finds exactly the records still to do (acct_rerate_user orders by price_version too, so that no other
-- index can give its order and the planner cannot pick one of them on stale statistics).
CREATE INDEX usage_records_rerate ON usage_records (user_id, model_id, price_version, created_at, id)
  WHERE model_id IS NOT NULL;
