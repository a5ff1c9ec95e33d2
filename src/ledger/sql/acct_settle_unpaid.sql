-- acct_settle_unpaid: debt settlement (issue 16). The caller holds the user's row lock and has just added
-- new credits (a grant, a positive adjustment, a scheduled grant; never a released hold). Pays the user's
-- unpaid usage, oldest record first, with up to p_max of the available credits (drawn in consumption order
-- as 'charge' rows linked to the record they pay), and moves what was paid from unpaid to charged on the
-- record and in the rollup row the record was counted in. Returns what was paid.
-- When it paid something, the low-balance state follows the movement (acct_event_balance, issue 15).
-- Lock order: user (held), then the records, then lots (inside acct_draw).
CREATE OR REPLACE FUNCTION acct_settle_unpaid(p_user text, p_max bigint, p_actor text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  rec record;
  v_left bigint := p_max;
  v_pay bigint;
  v_drawn bigint;
BEGIN
  IF p_max <= 0 THEN
    RETURN 0;
  END IF;
  FOR rec IN
    SELECT id, session_id, unpaid_credits, created_at, service, operation, model_id
      FROM usage_records
     WHERE user_id = p_user AND unpaid_credits > 0
     ORDER BY created_at, id
       FOR UPDATE
  LOOP
    v_pay := least(rec.unpaid_credits, v_left, acct_available(p_user));
    EXIT WHEN v_pay <= 0;
    v_drawn := acct_draw(p_user, v_pay, 'charge', rec.session_id, rec.id, p_actor);
    IF v_drawn <> v_pay THEN
      RAISE EXCEPTION 'acct_settle_unpaid: drew % of % for user %', v_drawn, v_pay, p_user;
    END IF;
    UPDATE usage_records SET unpaid_credits = unpaid_credits - v_pay, charged_credits = charged_credits + v_pay
     WHERE id = rec.id;
    UPDATE usage_daily SET unpaid_credits = unpaid_credits - v_pay
     WHERE user_id = p_user AND day = (rec.created_at AT TIME ZONE 'UTC')::date AND service = rec.service
       AND operation = rec.operation AND model_id = coalesce(rec.model_id, '');
    v_left := v_left - v_pay;
    EXIT WHEN v_left = 0;
  END LOOP;
  IF v_left < p_max THEN
    PERFORM acct_event_balance(p_user);
  END IF;
  RETURN p_max - v_left;
END $$;
