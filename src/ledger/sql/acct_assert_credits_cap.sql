-- acct_assert_credits_cap: the bound on what one user may hold (issue 12), checked wherever credits enter
-- to a user's lots: a grant (acct_grant: allocate, schedules), a positive adjustment (acct_adjust) and a
-- refund that returns credits (acct_refund_usage).
-- What a user has in lots plus what their active sessions hold never exceeds 9e18 micro-credits, so
-- acct_available's bigint sum cannot overflow. Releases only move held credits back, so checking where credits
-- enter keeps it true. Class 22 with a constraint name: the API answers a 400 naming the amount
-- (ledgerError), and nothing changes.
CREATE OR REPLACE FUNCTION acct_assert_credits_cap(p_user text, p_amount bigint) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  IF (SELECT coalesce(sum(remaining_credits), 0) FROM credit_allocations WHERE user_id = p_user)
     + (SELECT coalesce(sum(h.held_credits - h.captured_credits - h.released_credits), 0)
          FROM session_holds h JOIN streaming_sessions s ON s.user_id = h.user_id AND s.id = h.session_id
         WHERE h.user_id = p_user AND s.status = 'active')
     + p_amount > 9000000000000000000 THEN
    RAISE EXCEPTION 'a user may hold at most 9,000,000,000,000 credits'
      USING ERRCODE = 'numeric_value_out_of_range', CONSTRAINT = 'user_credits_cap';
  END IF;
END $$;
