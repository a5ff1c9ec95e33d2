-- acct_available: current definition (first created in migrations/20261124000100_initial_schema.up.sql).
-- Available credits: remaining in lots that have not expired. Expired lots never count, swept or not.
-- PL/pgSQL, not SQL (issue 19): a SQL function whose body has a FROM is never inlined, and PostgreSQL plans
-- such a body again at every call from PL/pgSQL (about 0.1 ms, twice per session open); PL/pgSQL keeps the
-- query's plan for the connection. STABLE: it reads in its caller's snapshot.
CREATE OR REPLACE FUNCTION acct_available(p_user text) RETURNS bigint LANGUAGE plpgsql STABLE AS $$
BEGIN
  RETURN (SELECT coalesce(sum(remaining_credits), 0)::bigint FROM credit_allocations
           WHERE user_id = p_user AND remaining_credits > 0 AND (expires_at IS NULL OR expires_at > now()));
END $$;
