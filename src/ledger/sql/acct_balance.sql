-- acct_balance: first created for the balance behind PgBouncer (issue 18, docs/scaling.md section 4).
-- A user's balance in one snapshot: one row per available lot (unexpired, remaining > 0) in consumption
-- order, or one row with NULL lot columns for a user without lots, each carrying what the active sessions
-- reserve, the unpaid usage, the end of the "expiring soon" window (now + p_soon_days), the org and the
-- status of the budgets that apply (the user's own and the org's, as acct_budget_status gives them; amounts
-- as text inside the jsonb, so no precision is lost).
-- p_org: the token's org claim; NULL keeps the stored one (the claim wins, as the mirror writes it).
-- PL/pgSQL, not SQL, on purpose: a SQL function of one SELECT is inlined into the calling statement and
-- planned with it on every call when the service sends unnamed statements (DATABASE_PREPARED_STATEMENTS=
-- false, as behind PgBouncer in transaction mode), while PL/pgSQL keeps its query's plan for the session.
-- The org is read into a variable first (issue 19): given as a sub-select, it kept acct_budget_status (SQL)
-- from being inlined, and PostgreSQL then planned that function's query again at every call (~0.2 ms, most
-- of a balance read's time in the database).
-- STABLE: both of its queries run in the calling statement's snapshot.
CREATE OR REPLACE FUNCTION acct_balance(p_user text, p_soon_days integer, p_org text)
RETURNS TABLE (reserved numeric, unpaid numeric, soon_before timestamptz, org_id text, budgets jsonb,
               id bigint, user_id text, total_credits bigint, remaining_credits bigint, expires_at timestamptz,
               allocated_by text, note text, created_at timestamptz)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
DECLARE
  v_org text := coalesce(p_org, (SELECT ua.org_id FROM user_accounts ua WHERE ua.id = p_user));
BEGIN
  RETURN QUERY
  SELECT r.reserved, r.unpaid, r.soon_before, r.org_id, r.budgets,
         a.id, a.user_id, a.total_credits, a.remaining_credits, a.expires_at, a.allocated_by, a.note, a.created_at
    FROM (SELECT now() + make_interval(days => p_soon_days) AS soon_before,
                 (SELECT coalesce(sum(h.held_credits - h.captured_credits - h.released_credits), 0)
                    FROM streaming_sessions s JOIN session_holds h ON h.user_id = s.user_id AND h.session_id = s.id
                   WHERE s.user_id = p_user AND s.status = 'active') AS reserved,
                 -- Through the partial index of unpaid records: empty for a user without debt.
                 (SELECT coalesce(sum(u.unpaid_credits), 0) FROM usage_records u
                   WHERE u.user_id = p_user AND u.unpaid_credits > 0) AS unpaid,
                 v_org AS org_id,
                 (SELECT coalesce(jsonb_agg(to_jsonb(st) ORDER BY st.budget_id::bigint), '[]'::jsonb)
                    FROM (SELECT b.budget_id::text, b.user_id, b.org_id, b.period, b.model_id, b.timezone,
                                 b.limit_credits::text, b.spent_credits::text, b.held_credits::text, b.period_start,
                                 b.resets_at
                            FROM acct_budget_status(p_user, v_org, now()) b) st) AS budgets) r
    LEFT JOIN credit_allocations a
      ON a.user_id = p_user AND a.remaining_credits > 0 AND (a.expires_at IS NULL OR a.expires_at > now())
   ORDER BY a.expires_at NULLS LAST, a.id;
END $$;
