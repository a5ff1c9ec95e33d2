-- acct_budget_status: first created for budgets (issue 14, docs/budgets.md).
-- The budgets of a scope in their current period at p_at: p_user's own and those of p_org (either may be
-- NULL), with what the period spent and what active sessions hold in it (zero before its first use).
-- A read: it creates no counter row.
CREATE OR REPLACE FUNCTION acct_budget_status(p_user text, p_org text, p_at timestamptz)
RETURNS TABLE (budget_id bigint, user_id text, org_id text, period text, model_id text, timezone text,
               limit_credits bigint, spent_credits bigint, held_credits bigint, period_start timestamptz,
               resets_at timestamptz)
LANGUAGE sql STABLE AS $$
  SELECT b.id, b.user_id, b.org_id, b.period, b.model_id, b.timezone, b.limit_credits,
         coalesce(k.spent_credits, 0), coalesce(k.held_credits, 0), p.start,
         acct_budget_period_end(b.period, b.timezone, p_at)
    FROM budgets b
   CROSS JOIN LATERAL (SELECT acct_budget_period_start(b.period, b.timezone, p_at) AS start) p
    LEFT JOIN budget_counters k ON k.budget_id = b.id AND k.period_start = p.start
   WHERE (p_user IS NOT NULL AND b.user_id = p_user) OR (p_org IS NOT NULL AND b.org_id = p_org)
   ORDER BY b.id
$$;
