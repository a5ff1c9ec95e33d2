-- acct_available: current definition (first created in migrations/20261124000100_initial_schema.up.sql).
-- Available credits: remaining in lots that have not expired. Expired lots never count, swept or not.
CREATE OR REPLACE FUNCTION acct_available(p_user text) RETURNS bigint LANGUAGE sql STABLE AS $$
  SELECT coalesce(sum(remaining_credits), 0)::bigint FROM credit_allocations
   WHERE user_id = p_user AND remaining_credits > 0 AND (expires_at IS NULL OR expires_at > now())
$$;
