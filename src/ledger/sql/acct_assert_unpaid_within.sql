-- acct_assert_unpaid_within: refuses (SQLSTATE UL402, DETAIL = the unpaid micro-credits) when the user's
-- outstanding unpaid credits are strictly above p_limit (UNPAID_LIMIT_CREDITS, API.md Usage). Called with the
-- user's row locked, so concurrent requests of one user see each other's debt. Reads the partial index
-- usage_records_unpaid (only records with a debt).
CREATE OR REPLACE FUNCTION acct_assert_unpaid_within(p_user text, p_limit bigint) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  v_unpaid numeric;
BEGIN
  IF p_limit IS NULL THEN
    RETURN;
  END IF;
  SELECT coalesce(sum(unpaid_credits), 0) INTO v_unpaid FROM usage_records WHERE user_id = p_user AND unpaid_credits > 0;
  IF v_unpaid > p_limit THEN
    RAISE EXCEPTION 'unpaid credits % are above the limit %', v_unpaid, p_limit
      USING ERRCODE = 'UL402', DETAIL = v_unpaid::text;
  END IF;
END $$;
