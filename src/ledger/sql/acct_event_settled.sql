-- acct_event_settled: after a finalize/abort, session.overage when real usage was left unpaid, then the
-- low-balance state.
CREATE OR REPLACE FUNCTION acct_event_settled(p_user text, p_session text, p_status text, p_model text,
                                              p_used bigint, p_unpaid bigint) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  IF p_unpaid > 0 THEN
    PERFORM acct_event_emit('session.overage', p_user, jsonb_build_object(
      'sessionId', p_session, 'status', p_status, 'modelId', p_model,
      'usedCredits', acct_event_credits(p_used), 'unpaidCredits', acct_event_credits(p_unpaid)));
  END IF;
  PERFORM acct_event_balance(p_user);
END $$;
