-- acct_session_result_of: current definition (first created in migrations/20261124002000_streaming_sessions.up.sql).
CREATE OR REPLACE FUNCTION acct_session_result_of(p_outcome text, p_available bigint, s streaming_sessions)
RETURNS acct_session_result LANGUAGE sql IMMUTABLE AS $$
  SELECT ROW(p_outcome, p_available, s.id, s.user_id, s.model_id, s.price_version, s.status, s.estimated_credits,
             s.allocated_credits, s.used_credits, s.refunded_credits, s.unpaid_credits, s.expires_at,
             s.created_at)::acct_session_result
$$;
