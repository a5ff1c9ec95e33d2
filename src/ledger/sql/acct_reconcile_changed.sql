-- acct_reconcile_changed: first created for incremental reconcile (issue 18, docs/credits.md "Reconcile").
-- The users and budgets an incremental reconcile must check: every one with a row that may have been written
-- (inserted or updated) since p_since, the oldest transaction still running when the last clean run took its
-- snapshot (pg_snapshot_xmin, as a 64-bit xid); plus those reconcile_dirty names (deletes, past differences).
-- Every row a clean run could not see has an xmin >= p_since. Rows are judged by the system column xmin:
--   xmin is a 32-bit xid that wraps around, so it is never compared with p_since directly. age(xmin) is how
--   many transactions ago the row was written (32-bit modular, relative to one "now" per transaction), and a
--   row counts as changed when age(xmin) <= age(p_since), i.e. it was written no earlier than p_since. For a
--   row written since p_since the age is exact as long as p_since is less than 2^31 transactions old: the
--   caller runs a full reconcile instead when it is more than 10^9 old (Ledger.reconcileChanged). Any other
--   row's age is either exact (so it is rightly left out) or, for a frozen row older than 2^31 transactions
--   whose raw xmin is kept, wrapped to an arbitrary value: it may then count as changed, which only checks
--   more. A p_since that falls on a special xid (0-2) gives age() = 2^31-1, so everything is checked.
-- Deletes leave no xmin: the reconcile_dirty triggers note them. Plain SELECTs on the parent tables, so this
-- works on partitioned tables as well (xmin is read from each partition's rows).
DROP FUNCTION IF EXISTS acct_reconcile_changed(bigint);
CREATE OR REPLACE FUNCTION acct_reconcile_changed(p_since bigint)
RETURNS TABLE (user_id text, budget_id bigint, dirty_id bigint)
LANGUAGE sql STABLE AS $$
  WITH h AS MATERIALIZED (SELECT age((p_since % 4294967296)::text::xid) AS horizon)
  SELECT t.user_id, NULL::bigint, NULL::bigint FROM credit_transactions t WHERE age(t.xmin) <= (SELECT horizon FROM h)
  UNION
  SELECT a.user_id, NULL, NULL FROM credit_allocations a WHERE age(a.xmin) <= (SELECT horizon FROM h)
  UNION
  SELECT s.user_id, NULL, NULL FROM session_holds s WHERE age(s.xmin) <= (SELECT horizon FROM h)
  UNION
  SELECT s.user_id, NULL, NULL FROM streaming_sessions s WHERE age(s.xmin) <= (SELECT horizon FROM h)
  UNION
  SELECT r.user_id, NULL, NULL FROM usage_records r WHERE age(r.xmin) <= (SELECT horizon FROM h)
  UNION
  SELECT c.user_id, c.budget_id, NULL FROM budget_charges c WHERE age(c.xmin) <= (SELECT horizon FROM h)
  UNION
  SELECT NULL, k.budget_id, NULL FROM budget_counters k WHERE age(k.xmin) <= (SELECT horizon FROM h)
  UNION ALL
  SELECT d.user_id, d.budget_id, d.id FROM reconcile_dirty d
$$;
