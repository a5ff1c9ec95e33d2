-- acct_budget_refund_record: first created for budgets (issue 14, docs/budgets.md).
-- A refund of p_amount on a usage record takes it off the spend of every budget the record counted in, in
-- the period it counted in (never below what the record added): the record's own charges, or for a
-- streaming session's record its session's charges. Call acct_budget_lock_record first, before the
-- user's row. Called by acct_refund_usage (POST /api/usage/records/:id/refund).
CREATE OR REPLACE FUNCTION acct_budget_refund_record(p_record bigint, p_amount bigint)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  c record;
  v_back bigint;
BEGIN
  IF coalesce(p_amount, 0) <= 0 THEN
    RETURN;
  END IF;
  FOR c IN SELECT ch.id, ch.budget_id, ch.period_start, ch.spent_credits FROM budget_charges ch
            WHERE ch.usage_record_id = p_record
           UNION ALL
           SELECT ch.id, ch.budget_id, ch.period_start, ch.spent_credits FROM budget_charges ch JOIN usage_records u
               ON u.id = p_record AND u.session_id IS NOT NULL AND ch.user_id = u.user_id AND ch.session_id = u.session_id
           ORDER BY 2, 3 LOOP
    v_back := least(p_amount, c.spent_credits);
    CONTINUE WHEN v_back = 0;
    UPDATE budget_counters SET spent_credits = spent_credits - v_back
     WHERE budget_id = c.budget_id AND period_start = c.period_start;
    UPDATE budget_charges SET spent_credits = spent_credits - v_back WHERE id = c.id;
  END LOOP;
END $$;
