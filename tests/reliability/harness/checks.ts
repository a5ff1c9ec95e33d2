import type { ControlledPostgres } from './postgres';
import { api } from './http';

export interface LedgerReport {
  ok: boolean;
  lots: number;
  users: number;
  problems: string[];
  /** What the service's own GET /api/admin/reconcile answered, when asked. */
  serviceReconcile?: { ok: boolean; checkedUsers?: number; discrepancies?: unknown[] };
}

/**
 * The suite's own reconciliation, straight from the tables (docs/architecture.md "Ledger model"):
 * - per lot, remaining = Σ signed ledger amounts (grant/release/adjust/refund add; hold/charge/expire/revoke subtract);
 * - per lot, its opening rows (grant, a first positive adjust, a refund from another lot) sum to total;
 * - per lot, total + later adjustments/refunds - revoked = remaining + open holds + captured + charged + expired;
 * - a resolved (non-active) session has every hold leg fully captured or released;
 * - no lot and no user's available balance is negative; usage records have charged + unpaid + refunded = credits.
 * Given an admin token, the service's own GET /api/admin/reconcile is asked too and must say ok.
 */
export async function checkLedger(pg: Pick<ControlledPostgres, 'sql'>, service?: { url: string; adminToken: string }): Promise<LedgerReport> {
  const problems: string[] = [];

  // A lot's total is what opened money into it (as acct_reconcile has it since corrections): its grant rows, a
  // positive adjust that is its first row, and refund rows whose origin is another lot.
  const lots = await pg.sql<{ id: string; total: string; remaining: string; ledger: string; openings: string; opening_sum: string; open_held: string; captured: string; charged: string; expired: string; other_in: string; revoked: string }>(`
    WITH e AS (
      SELECT allocation_id, type, amount, row_number() OVER (PARTITION BY allocation_id ORDER BY id) AS nth,
             (type = 'grant' OR (type = 'adjust' AND amount > 0) OR (type = 'refund' AND origin_allocation_id IS DISTINCT FROM allocation_id)) AS opening_kind
        FROM credit_transactions WHERE allocation_id IS NOT NULL),
    o AS (SELECT *, opening_kind AND (type <> 'adjust' OR nth = 1) AS opening FROM e),
    t AS (
      SELECT allocation_id AS id,
             sum(CASE type WHEN 'grant' THEN amount WHEN 'release' THEN amount WHEN 'adjust' THEN amount WHEN 'refund' THEN amount
                           WHEN 'hold' THEN -amount WHEN 'charge' THEN -amount WHEN 'expire' THEN -amount WHEN 'revoke' THEN -amount ELSE 0 END) AS ledger,
             count(*) FILTER (WHERE opening) AS openings,
             coalesce(sum(amount) FILTER (WHERE opening), 0) AS opening_sum,
             coalesce(sum(amount) FILTER (WHERE type = 'charge'), 0) AS charged,
             coalesce(sum(amount) FILTER (WHERE type = 'expire'), 0) AS expired,
             coalesce(sum(amount) FILTER (WHERE type IN ('adjust', 'refund') AND NOT opening), 0) AS other_in,
             coalesce(sum(amount) FILTER (WHERE type = 'revoke'), 0) AS revoked
        FROM o GROUP BY allocation_id),
    h AS (
      SELECT allocation_id AS id, sum(held_credits - captured_credits - released_credits) AS open_held,
             sum(captured_credits) AS captured
        FROM session_holds GROUP BY allocation_id)
    SELECT a.id::text, a.total_credits::text AS total, a.remaining_credits::text AS remaining,
           coalesce(t.ledger, 0)::text AS ledger, coalesce(t.openings, 0)::text AS openings, coalesce(t.opening_sum, 0)::text AS opening_sum,
           coalesce(h.open_held, 0)::text AS open_held, coalesce(h.captured, 0)::text AS captured,
           coalesce(t.charged, 0)::text AS charged, coalesce(t.expired, 0)::text AS expired,
           coalesce(t.other_in, 0)::text AS other_in, coalesce(t.revoked, 0)::text AS revoked
      FROM credit_allocations a LEFT JOIN t ON t.id = a.id LEFT JOIN h ON h.id = a.id`);
  for (const lot of lots) {
    const b = (s: string) => BigInt(s);
    if (b(lot.remaining) !== b(lot.ledger)) problems.push(`lot ${lot.id}: remaining ${lot.remaining} != ledger ${lot.ledger}`);
    if (lot.openings === '0' || lot.opening_sum !== lot.total) problems.push(`lot ${lot.id}: ${lot.openings} opening rows summing ${lot.opening_sum}, total ${lot.total}`);
    const accounted = b(lot.remaining) + b(lot.open_held) + b(lot.captured) + b(lot.charged) + b(lot.expired);
    if (b(lot.total) + b(lot.other_in) - b(lot.revoked) !== accounted) {
      problems.push(`lot ${lot.id}: total ${lot.total} + adjust/refund ${lot.other_in} - revoked ${lot.revoked} != remaining+held+captured+charged+expired ${accounted}`);
    }
    if (b(lot.remaining) < 0n) problems.push(`lot ${lot.id}: remaining ${lot.remaining} is negative`);
  }

  const unresolved = await pg.sql<{ session_id: string; status: string }>(`
    SELECT h.session_id, s.status FROM session_holds h JOIN streaming_sessions s ON s.user_id = h.user_id AND s.id = h.session_id
     WHERE s.status <> 'active' AND h.captured_credits + h.released_credits <> h.held_credits LIMIT 20`);
  for (const r of unresolved) problems.push(`session ${r.session_id} (${r.status}) has an unresolved hold leg`);

  const negative = await pg.sql<{ id: string; available: string }>(`
    SELECT id, acct_available(id)::text AS available FROM user_accounts WHERE acct_available(id) < 0 LIMIT 20`);
  for (const r of negative) problems.push(`user ${r.id}: available ${r.available} is negative`);

  // A refund moves credits from charged/unpaid to refunded; the record keeps its cost.
  const badUsage = await pg.sql(`SELECT id FROM usage_records WHERE charged_credits + unpaid_credits + refunded_credits <> credits LIMIT 5`);
  for (const r of badUsage) problems.push(`usage record ${String(r.id)}: charged + unpaid + refunded != credits`);

  const [{ users }] = await pg.sql<{ users: string }>(`SELECT count(*)::text AS users FROM user_accounts`);
  const report: LedgerReport = { ok: problems.length === 0, lots: lots.length, users: Number(users), problems };

  if (service) {
    const res = await api(service.url, service.adminToken, 'GET', '/api/admin/reconcile');
    const body = res.json as LedgerReport['serviceReconcile'];
    report.serviceReconcile = body;
    if (res.status !== 200 || !body?.ok) {
      report.ok = false;
      problems.push(`GET /api/admin/reconcile answered ${res.status}: ${res.text.slice(0, 500)}`);
    }
  }
  return report;
}

/** Counts and sums of every table that holds money or its history, to prove "nothing else changed". */
export async function moneySnapshot(pg: ControlledPostgres, userId?: string): Promise<Record<string, string>> {
  const where = userId ? `WHERE user_id = $1` : '';
  const params = userId ? [userId] : [];
  const [row] = await pg.sql<Record<string, string>>(
    `SELECT
       (SELECT count(*) FROM credit_allocations ${where})::text AS allocations,
       (SELECT coalesce(sum(remaining_credits), 0) FROM credit_allocations ${where})::text AS remaining,
       (SELECT count(*) FROM credit_transactions ${where})::text AS ledger_rows,
       (SELECT coalesce(sum(amount), 0) FROM credit_transactions ${where})::text AS ledger_sum,
       (SELECT count(*) FROM streaming_sessions ${where})::text AS sessions,
       (SELECT count(*) FROM session_holds ${where})::text AS hold_legs,
       (SELECT count(*) FROM usage_records ${where})::text AS usage_records,
       (SELECT count(*) FROM usage_daily ${where})::text AS usage_daily_rows,
       (SELECT count(*) FROM idempotency_keys ${userId ? 'WHERE caller_id = $1' : ''})::text AS idempotency_keys,
       (SELECT count(*) FROM user_accounts ${userId ? 'WHERE id = $1' : ''})::text AS users`,
    params,
  );
  return row;
}

/** Deadlocks PostgreSQL has detected in the service database so far. */
export async function deadlockCount(pg: ControlledPostgres): Promise<number> {
  const [row] = await pg.sql<{ deadlocks: string }>(`SELECT deadlocks::text FROM pg_stat_database WHERE datname = current_database()`);
  return Number(row.deadlocks);
}
