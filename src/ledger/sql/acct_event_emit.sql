-- acct_event_emit: appends one event to the outbox (events), in the caller's transaction, so the event
-- commits or rolls back with the change it reports. Any ledger function may call it; the dispatcher and
-- GET /api/events read it. Types and payloads: docs/events.md. Returns the event's id.
CREATE OR REPLACE FUNCTION acct_event_emit(p_type text, p_user text, p_data jsonb, p_org text DEFAULT NULL)
RETURNS bigint LANGUAGE sql AS $$
  INSERT INTO events (type, user_id, org_id, data) VALUES (p_type, p_user, p_org, coalesce(p_data, '{}'::jsonb))
  RETURNING id
$$;
