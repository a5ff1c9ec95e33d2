-- acct_event_balance: emits credits.low (one per LOW_BALANCE_THRESHOLDS threshold crossed downwards) and
-- credits.depleted (available reached 0) after a movement. The caller holds the user's row lock, so the
-- state it compares with (user_event_state.balance_level: the highest threshold, or 1 micro-credit for "not
-- empty", that available was at or above when last looked at) cannot change under it. A rise re-arms the
-- thresholds it passes. Writes nothing when the level did not change (the common case).
-- It runs at every open and settle (issue 19): the common path is one query (available, thresholds and the
-- stored level together) and a loop of simple expressions, which PL/pgSQL evaluates without the executor.
CREATE OR REPLACE FUNCTION acct_event_balance(p_user text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  v_available bigint;
  v_thresholds bigint[];
  v_old bigint;
  v_new bigint;
  v_threshold bigint;
BEGIN
  SELECT acct_available(p_user),
         coalesce((SELECT low_balance_thresholds FROM event_settings WHERE id), '{}'::bigint[]),
         coalesce((SELECT balance_level FROM user_event_state WHERE user_id = p_user), 0)
    INTO v_available, v_thresholds, v_old;
  v_new := CASE WHEN v_available >= 1 THEN 1 ELSE 0 END;
  FOREACH v_threshold IN ARRAY v_thresholds LOOP
    IF v_threshold <= v_available AND v_threshold > v_new THEN
      v_new := v_threshold;
    END IF;
  END LOOP;
  IF v_new = v_old THEN
    RETURN;
  END IF;
  IF v_new < v_old THEN
    -- Every threshold in (new level, old level] was at or below available before and is above it now.
    FOR v_threshold IN SELECT DISTINCT t FROM unnest(v_thresholds) t WHERE t > v_new AND t <= v_old ORDER BY t DESC LOOP
      PERFORM acct_event_emit('credits.low', p_user,
        jsonb_build_object('thresholdCredits', acct_event_credits(v_threshold),
                           'availableCredits', acct_event_credits(v_available)));
    END LOOP;
    IF v_available = 0 THEN
      PERFORM acct_event_emit('credits.depleted', p_user, jsonb_build_object('availableCredits', 0));
    END IF;
  END IF;
  INSERT INTO user_event_state AS s (user_id, balance_level) VALUES (p_user, v_new)
  ON CONFLICT (user_id) DO UPDATE SET balance_level = EXCLUDED.balance_level, updated_at = now();
END $$;
