-- acct_record_charged_usage: current definition (first created in migrations/20261124003000_usage.up.sql).
-- Records usage and charges it in one round trip. Creates the user if unknown (usage that happened is
-- always recorded), locks the user row first, charges what the live lots cover (kind 'charge', ledger
-- rows linked to the record) and stores the rest as unpaid. Never fails for lack of credits.
-- p_credits is the full cost in micro-credits; p_occurred_at when the usage happened (NULL: now), which
-- decides the day it is counted on. Returns the record id and time, what was charged and left unpaid,
-- and the credits available afterwards.
-- p_unpaid_limit: UNPAID_LIMIT_CREDITS in micro-credits for a user's own record (NULL: never refused, as for
-- records made by supervisors and admins).
DROP FUNCTION IF EXISTS acct_record_charged_usage(text, text, text, text, integer, bigint, bigint, bigint, bigint,
                                                  jsonb, text);
DROP FUNCTION IF EXISTS acct_record_charged_usage(text, text, text, text, integer, bigint, bigint, bigint, bigint,
                                                  jsonb, text, bigint, bigint, bigint, timestamptz);
DROP FUNCTION IF EXISTS acct_record_charged_usage(text, text, text, text, integer, bigint, bigint, bigint, bigint,
                                                  jsonb, text, bigint);
CREATE OR REPLACE FUNCTION acct_record_charged_usage(
  p_user text, p_service text, p_operation text, p_model text, p_price_version integer,
  p_input bigint, p_output bigint, p_cached bigint, p_credits bigint, p_metadata jsonb, p_actor text,
  p_cache_write bigint DEFAULT 0, p_cache_write_1h bigint DEFAULT 0, p_reasoning bigint DEFAULT 0,
  p_occurred_at timestamptz DEFAULT NULL, p_unpaid_limit bigint DEFAULT NULL
) RETURNS TABLE (usage_record_id bigint, created_at timestamptz, charged_credits bigint, unpaid_credits bigint,
                 available_credits bigint)
LANGUAGE plpgsql AS $$
DECLARE
  available bigint;
  charged bigint;
  drawn bigint;
  new_id bigint;
BEGIN
  IF p_credits < 0 THEN
    RAISE EXCEPTION 'acct_record_charged_usage: negative credits %', p_credits;
  END IF;
  -- Budgets (docs/budgets.md): their counter rows are locked before the user row.
  PERFORM acct_budget_lock(p_user, NULL, p_model, coalesce(p_occurred_at, now()));
  PERFORM 1 FROM user_accounts WHERE id = p_user FOR UPDATE;
  IF NOT FOUND THEN
    INSERT INTO user_accounts (id) VALUES (p_user) ON CONFLICT (id) DO NOTHING;
    PERFORM 1 FROM user_accounts WHERE id = p_user FOR UPDATE;
  END IF;
  -- With the user locked no other movement can change the lots, and now() is fixed for the transaction,
  -- so acct_draw sees exactly this availability.
  PERFORM acct_assert_unpaid_within(p_user, p_unpaid_limit);
  available := acct_available(p_user);
  charged := least(p_credits, available);
  new_id := acct_record_usage(p_user, NULL, p_service, p_operation, p_model, p_price_version, p_input, p_output,
                              p_cached, p_credits, charged, p_credits - charged, p_metadata, p_actor,
                              p_cache_write, p_cache_write_1h, p_reasoning, p_occurred_at);
  -- A user's own record is refused (P0B01, all rolled back) when a budget would be exceeded. A late event
  -- (occurredAt) counts in the budget period it belongs to.
  PERFORM acct_budget_charge(p_user, new_id, p_model, p_credits, coalesce(p_occurred_at, now()), p_actor = p_user);
  drawn := acct_draw(p_user, charged, 'charge', NULL, new_id, p_actor);
  IF drawn <> charged THEN
    RAISE EXCEPTION 'acct_record_charged_usage: drew % of %', drawn, charged;
  END IF;
  PERFORM acct_event_balance(p_user);  -- events (issue 15): credits.low / credits.depleted
  RETURN QUERY SELECT new_id, r.created_at, charged, p_credits - charged, available - charged
                 FROM usage_records r WHERE r.id = new_id;
END $$;
