-- Back to globally unique session ids. Fails (and changes nothing) once two users share a sessionId.
DROP INDEX credit_transactions_session;
CREATE INDEX credit_transactions_session ON credit_transactions (session_id) WHERE session_id IS NOT NULL;
ALTER TABLE credit_transactions DROP CONSTRAINT credit_transactions_session_fkey;
ALTER TABLE usage_records DROP CONSTRAINT usage_records_session_fkey;
ALTER TABLE usage_records DROP CONSTRAINT usage_records_session_key;
ALTER TABLE session_holds DROP CONSTRAINT session_holds_session_fkey;
ALTER TABLE session_holds DROP CONSTRAINT session_holds_pkey;
ALTER TABLE session_holds ADD CONSTRAINT session_holds_pkey PRIMARY KEY (session_id, allocation_id);
ALTER TABLE streaming_sessions DROP CONSTRAINT streaming_sessions_pkey;
ALTER TABLE streaming_sessions ADD CONSTRAINT streaming_sessions_pkey PRIMARY KEY (id);
ALTER TABLE usage_records ADD CONSTRAINT usage_records_session_id_key UNIQUE (session_id);
ALTER TABLE usage_records ADD CONSTRAINT usage_records_session_id_fkey FOREIGN KEY (session_id) REFERENCES streaming_sessions (id);
ALTER TABLE session_holds ADD CONSTRAINT session_holds_session_id_fkey FOREIGN KEY (session_id) REFERENCES streaming_sessions (id);
