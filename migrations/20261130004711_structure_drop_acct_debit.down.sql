-- Restores acct_debit as it was before 20261130004711 (its text from the former src/ledger/sql/acct_debit.sql).
-- acct_debit: current definition (first created in migrations/20261124001000_credits.up.sql).
-- Locks the user, then draws p_amount ('charge' or 'hold') from live lots. All or nothing unless
-- p_allow_partial (then it draws what is available). Returns what was drawn and what was available before;
-- drawn = 0 with available_before < p_amount means "insufficient, nothing changed".
-- Callers inside a larger transaction may already hold the user lock; taking it again is a no-op.
CREATE OR REPLACE FUNCTION acct_debit(p_user text, p_amount bigint, p_kind text, p_allow_partial boolean,
                           p_session text, p_usage_record bigint, p_actor text)
RETURNS TABLE (drawn bigint, available_before bigint) LANGUAGE plpgsql AS $$
DECLARE
  available bigint;
BEGIN
  IF p_amount < 0 THEN
    RAISE EXCEPTION 'acct_debit: negative amount %', p_amount;
  END IF;
  PERFORM 1 FROM user_accounts WHERE id = p_user FOR UPDATE;
  available := acct_available(p_user);
  IF available >= p_amount OR p_allow_partial THEN
    drawn := acct_draw(p_user, least(p_amount, available), p_kind, p_session, p_usage_record, p_actor);
  ELSE
    drawn := 0;
  END IF;
  available_before := available;
  PERFORM acct_event_balance(p_user);  -- events (issue 15): credits.low / credits.depleted
  RETURN NEXT;
END $$;
