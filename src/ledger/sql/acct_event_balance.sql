-- acct_event_balance: emits credits.low (one per LOW_BALANCE_THRESHOLDS threshold crossed downwards) and
-- credits.depleted (available reached 0) after a movement. The caller holds the user's row lock, so the
-- state it compares with (user_event_state.balance_level: the highest threshold, or 1 micro-credit for "not
-- empty", that available was at or above when last looked at) cannot change under it. A rise re-arms the
-- thresholds it passes. Writes nothing when the level did not change (the common case).
CREATE OR REPLACE FUNCTION acct_event_balance(p_user text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  v_available bigint := acct_available(p_user);
  v_thresholds bigint[];
  v_old bigint;
  v_new bigint;
  v_threshold bigint;
BEGIN
  SELECT low_balance_thresholds INTO v_thresholds FROM event_settings WHERE id;
  v_thresholds := coalesce(v_thresholds, '{}'::bigint[]);
  SELECT balance_level INTO v_old FROM user_event_state WHERE user_id = p_user;
  v_old := coalesce(v_old, 0);
  SELECT coalesce(max(t), 0) INTO v_new FROM unnest(v_thresholds || 1::bigint) t WHERE t <= v_available;
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
