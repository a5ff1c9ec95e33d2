-- acct_event_session_expired: session.expired when the sweeper expires a hold, then the low-balance state.
CREATE OR REPLACE FUNCTION acct_event_session_expired(p_user text, p_session text, p_model text, p_held bigint,
                                                      p_charged bigint, p_policy text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  PERFORM acct_event_emit('session.expired', p_user, jsonb_build_object(
    'sessionId', p_session, 'modelId', p_model, 'allocatedCredits', acct_event_credits(p_held),
    'chargedCredits', acct_event_credits(p_charged), 'releasedCredits', acct_event_credits(p_held - p_charged),
    'expiryPolicy', p_policy));
  PERFORM acct_event_balance(p_user);
END $$;
