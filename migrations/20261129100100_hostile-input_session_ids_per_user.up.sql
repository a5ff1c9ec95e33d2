-- Issue 12: session ids are scoped to their user (API.md, Streaming sessions). Two users may use the same
-- sessionId; the key becomes (user_id, id) and everything that points at a session points at that pair.
-- Existing rows already satisfy the new keys (ids were unique across users, and every hold leg, usage record
-- and ledger row of a session carries the session owner's user_id), so no row is rewritten: the constraints
-- move, and the new ones are validated against the existing data.

ALTER TABLE session_holds DROP CONSTRAINT session_holds_session_id_fkey;
ALTER TABLE usage_records DROP CONSTRAINT usage_records_session_id_fkey;
ALTER TABLE usage_records DROP CONSTRAINT usage_records_session_id_key;

ALTER TABLE streaming_sessions DROP CONSTRAINT streaming_sessions_pkey;
ALTER TABLE streaming_sessions ADD CONSTRAINT streaming_sessions_pkey PRIMARY KEY (user_id, id);

ALTER TABLE session_holds DROP CONSTRAINT session_holds_pkey;
ALTER TABLE session_holds ADD CONSTRAINT session_holds_pkey PRIMARY KEY (user_id, session_id, allocation_id);
ALTER TABLE session_holds ADD CONSTRAINT session_holds_session_fkey
  FOREIGN KEY (user_id, session_id) REFERENCES streaming_sessions (user_id, id);

ALTER TABLE usage_records ADD CONSTRAINT usage_records_session_key UNIQUE (user_id, session_id);
ALTER TABLE usage_records ADD CONSTRAINT usage_records_session_fkey
  FOREIGN KEY (user_id, session_id) REFERENCES streaming_sessions (user_id, id);

-- The ledger names a session by the same pair (its user_id is always the session owner's).
ALTER TABLE credit_transactions ADD CONSTRAINT credit_transactions_session_fkey
  FOREIGN KEY (user_id, session_id) REFERENCES streaming_sessions (user_id, id) NOT VALID;
ALTER TABLE credit_transactions VALIDATE CONSTRAINT credit_transactions_session_fkey;
DROP INDEX credit_transactions_session;
CREATE INDEX credit_transactions_session ON credit_transactions (user_id, session_id) WHERE session_id IS NOT NULL;
