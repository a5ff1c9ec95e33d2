-- acct_session_extend: extends an active session (issue 13, long streams). Sets expires_at to now +
-- p_ttl_seconds (when given) and/or grows the hold by p_additional micro-credits, drawn from the owner's
-- live lots like the first hold (new legs, or more on the legs it already has). All or nothing: when the
-- available credits do not cover p_additional, nothing changes (outcome 'insufficient' with what is
-- available). Outcomes: extended | insufficient | not_active (ended) | not_found (unknown, or another
-- user's and the caller is not an admin). Lock order as everywhere: the budget counter rows the session's hold
-- counts in, the user row, then session, then lots. Budgets (docs/budgets.md): the larger hold counts on the
-- budgets the session's hold counts in, in the period of its initialize; when it would exceed one,
-- acct_budget_extend raises P0B01 (BUDGET_EXCEEDED) before credits are looked at, and nothing changes.
-- Session ids are scoped to their user: p_owner (default the caller) names whose session; only an admin
-- may name another user.
DROP FUNCTION IF EXISTS acct_session_extend(text, text, boolean, integer, bigint);
CREATE OR REPLACE FUNCTION acct_session_extend(
  p_session text, p_caller text, p_is_admin boolean, p_ttl_seconds integer, p_additional bigint,
  p_owner text DEFAULT NULL
) RETURNS acct_session_result LANGUAGE plpgsql AS $$
DECLARE
  s streaming_sessions%ROWTYPE;
  v_owner text;
  v_available bigint;
  v_additional bigint := coalesce(p_additional, 0);
BEGIN
  IF v_additional < 0 THEN
    RAISE EXCEPTION 'acct_session_extend: negative amount %', v_additional;
  END IF;
  v_owner := coalesce(p_owner, p_caller);
  IF v_owner <> p_caller AND NOT p_is_admin THEN
    RETURN acct_session_result_of('not_found', NULL, NULL::streaming_sessions);
  END IF;
  PERFORM acct_budget_lock_session(v_owner, p_session); -- budget counters before the user row
  PERFORM acct_lock_user(v_owner);
  SELECT * INTO s FROM streaming_sessions WHERE user_id = v_owner AND id = p_session FOR UPDATE;
  IF NOT FOUND THEN
    RETURN acct_session_result_of('not_found', NULL, NULL::streaming_sessions);
  END IF;
  IF s.status <> 'active' THEN
    RETURN acct_session_result_of('not_active', NULL, s);
  END IF;

  IF v_additional > 0 THEN
    PERFORM acct_budget_extend(v_owner, p_session, v_additional, false); -- raises P0B01 BUDGET_EXCEEDED
    v_available := acct_available(v_owner);
    IF v_available < v_additional THEN
      RETURN acct_session_result_of('insufficient', v_available, s);
    END IF;
    IF acct_draw(v_owner, v_additional, 'hold', p_session, NULL, p_caller) <> v_additional THEN
      RAISE EXCEPTION 'acct_session_extend: hold of % for session % not covered', v_additional, p_session;
    END IF;
    PERFORM acct_budget_extend(v_owner, p_session, v_additional, true); -- held += on the session's budgets
    PERFORM acct_event_balance(v_owner); -- events (issue 15): the larger hold may cross a low-balance threshold
  END IF;

  UPDATE streaming_sessions
     SET allocated_credits = allocated_credits + v_additional,
         expires_at = CASE WHEN p_ttl_seconds IS NULL THEN expires_at ELSE now() + make_interval(secs => p_ttl_seconds) END,
         updated_at = now()
   WHERE user_id = v_owner AND id = p_session
  RETURNING * INTO s;
  RETURN acct_session_result_of('extended', v_available, s);
END $$;
