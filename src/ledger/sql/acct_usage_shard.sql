-- acct_usage_shard: current definition (first created in migrations/20261124003000_usage.up.sql).
CREATE OR REPLACE FUNCTION acct_usage_shard(p_user text) RETURNS smallint LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT (hashtext(p_user) & 15)::smallint
$$;
