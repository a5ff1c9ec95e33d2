-- acct_signed_amount: current definition (first created in migrations/20261124001000_credits.up.sql).
-- What a ledger row did to its lot's remaining_credits (the convention of the initial schema):
-- grant/release/refund add, hold/charge/expire/revoke subtract, capture leaves it (held -> spent), adjust is
-- signed, forgive has no lot (it writes off unpaid usage).
CREATE OR REPLACE FUNCTION acct_signed_amount(p_type text, p_amount bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE p_type
           WHEN 'grant' THEN p_amount
           WHEN 'release' THEN p_amount
           WHEN 'adjust' THEN p_amount
           WHEN 'refund' THEN p_amount
           WHEN 'hold' THEN -p_amount
           WHEN 'charge' THEN -p_amount
           WHEN 'expire' THEN -p_amount
           WHEN 'revoke' THEN -p_amount
           ELSE 0
         END
$$;
