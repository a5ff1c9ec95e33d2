-- acct_session_open: current definition (first created in migrations/20261124002000_streaming_sessions.up.sql).
-- Opens a session and holds its estimate. Session ids are scoped to their user (key (user_id, id)): another
-- user's session with the same id is invisible here. Outcomes: created | replayed (same request hash) |
-- reused (other request) | insufficient (nothing written; available_credits says what there is).
-- p_unpaid_limit (UNPAID_LIMIT_CREDITS in micro-credits, NULL: none) refuses a new session while the user's
-- unpaid credits are above it, before credits are looked at (UNPAID_LIMIT comes before INSUFFICIENT_CREDITS).
DROP FUNCTION IF EXISTS acct_session_open(text, text, text, integer, bigint, bigint, bigint, bigint, text, integer);
CREATE OR REPLACE FUNCTION acct_session_open(
  p_session text, p_user text, p_model text, p_price_version integer,
  p_est_input bigint, p_est_output bigint, p_estimate bigint, p_est_input_credits bigint,
  p_request_hash text, p_ttl_seconds integer, p_unpaid_limit bigint DEFAULT NULL
) RETURNS acct_session_result LANGUAGE plpgsql AS $$
DECLARE
  s streaming_sessions%ROWTYPE;
  v_available bigint;
  v_budgets budgets[];
  v_starts timestamptz[];
  v_spent bigint;
  v_held bigint;
  v_used bigint;
  v_level smallint;
BEGIN
  -- Budgets (docs/budgets.md): their counter rows are locked before the user row. acct_session_open_as
  -- has just locked them (and says so, for this call only); a direct call locks them here.
  IF current_setting('acct.budgets_locked_for', true) IS DISTINCT FROM p_user THEN
    PERFORM acct_budget_lock(p_user, NULL, p_model, now());
  END IF;
  PERFORM set_config('acct.budgets_locked_for', '', true);
  PERFORM acct_lock_user(p_user);

  SELECT * INTO s FROM streaming_sessions WHERE user_id = p_user AND id = p_session;
  IF NOT FOUND THEN
    PERFORM acct_assert_unpaid_within(p_user, p_unpaid_limit);
    -- The budgets that apply and their periods, read once for the decision and the hold (as
    -- acct_budget_admit then acct_budget_hold would do, in one pass each).
    SELECT array_agg(b ORDER BY b.id), array_agg(acct_budget_period_start(b.period, b.timezone, now()) ORDER BY b.id)
      INTO v_budgets, v_starts
      FROM acct_budget_applicable(p_user, (SELECT org_id FROM user_accounts WHERE id = p_user), p_model) b;
    FOR i IN 1 .. coalesce(array_length(v_budgets, 1), 0) LOOP
      -- Locked already by acct_budget_lock (taking it again is free); FOR UPDATE also covers a counter that was
      -- not (the org changed in between; docs/architecture.md, lock order, notes that gap).
      SELECT spent_credits, held_credits INTO v_spent, v_held
        FROM budget_counters WHERE budget_id = v_budgets[i].id AND period_start = v_starts[i] FOR UPDATE;
      IF NOT FOUND THEN
        -- No row yet: create and lock it, or skip a budget deleted meanwhile.
        CONTINUE WHEN NOT acct_budget_counter(v_budgets[i].id, v_starts[i]);
        v_spent := 0;
        v_held := 0;
      END IF;
      IF v_spent + v_held + p_estimate > v_budgets[i].limit_credits THEN -- BUDGET_EXCEEDED, all rolled back
        RAISE EXCEPTION 'budget % would be exceeded', v_budgets[i].id
          USING ERRCODE = 'P0B01', DETAIL = acct_budget_details(v_budgets[i], v_starts[i], v_spent, v_held)::text;
      END IF;
    END LOOP;
    v_available := acct_available(p_user);
    IF v_available < p_estimate THEN
      RETURN acct_session_result_of('insufficient', v_available, NULL::streaming_sessions);
    END IF;
    INSERT INTO streaming_sessions (id, user_id, model_id, price_version, status, estimated_input_tokens,
                                    estimated_output_tokens, estimated_credits, estimated_input_credits,
                                    allocated_credits, request_hash, expires_at)
    VALUES (p_session, p_user, p_model, p_price_version, 'active', p_est_input, p_est_output, p_estimate,
            p_est_input_credits, p_estimate, p_request_hash, now() + make_interval(secs => p_ttl_seconds))
    RETURNING * INTO s;
    -- The user's row lock serializes this user's opens, so no concurrent insert of the same key can win.
    IF acct_draw(p_user, p_estimate, 'hold', p_session, NULL, p_user) <> p_estimate THEN
      RAISE EXCEPTION 'acct_session_open: hold of % for session % not covered', p_estimate, p_session;
    END IF;
    -- The hold counts on every budget that applies (acct_budget_hold, inline).
    FOR i IN 1 .. coalesce(array_length(v_budgets, 1), 0) LOOP
      UPDATE budget_counters SET held_credits = held_credits + p_estimate
       WHERE budget_id = v_budgets[i].id AND period_start = v_starts[i]
      RETURNING spent_credits + held_credits, threshold_level INTO v_used, v_level;
      CONTINUE WHEN NOT FOUND;
      INSERT INTO budget_charges (budget_id, period_start, user_id, session_id, held_credits)
      VALUES (v_budgets[i].id, v_starts[i], p_user, p_session, p_estimate);
      IF v_level < 100 AND v_used > 0 AND v_used::numeric * 5 >= v_budgets[i].limit_credits::numeric * 4 THEN
        PERFORM acct_budget_threshold(p_user, v_budgets[i].id, v_starts[i]);  -- budget.threshold at 80% / 100%
      END IF;
    END LOOP;
    PERFORM acct_event_balance(p_user);  -- events (issue 15): credits.low / credits.depleted
    RETURN acct_session_result_of('created', v_available - p_estimate, s);
  END IF;

  IF s.request_hash <> p_request_hash THEN
    RETURN acct_session_result_of('reused', NULL, NULL::streaming_sessions);
  END IF;
  RETURN acct_session_result_of('replayed', NULL, s);
END $$;
