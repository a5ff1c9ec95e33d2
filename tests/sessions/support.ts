import request from 'supertest';
import { userWithRole } from '../support/tokens';
import type { Database } from '../../src/db/database';

/**
 * A model with round prices for arithmetic in tests: 1 credit per 1,000 input tokens (1,000 micro-credits
 * per token), 2 per 1,000 output tokens, 0.5 per 1,000 cached input tokens.
 */
export const TEST_MODEL = 'test-model';

export async function addTestModel(db: Database, model = TEST_MODEL, version = 1, perToken = { input: 1000n, output: 2000n, cached: 500n }): Promise<void> {
  await db.query(
    `INSERT INTO model_prices (model_id, price_version, input_price_per_1m, output_price_per_1m, cached_input_price_per_1m, created_by)
     VALUES ($1, $2, $3, $4, $5, 'test') RETURNING 1`,
    [model, version, (perToken.input * 1_000_000n).toString(), (perToken.output * 1_000_000n).toString(), (perToken.cached * 1_000_000n).toString()],
  );
}

/**
 * Every accounting invariant the sessions touch, read straight from the tables; returns the violations
 * (an empty list when the books add up):
 * - each lot's remaining_credits equals the signed sum of its ledger rows;
 * - each lot's outstanding hold in the ledger (hold - release - capture) equals what active sessions' legs hold;
 * - each leg's held/captured/released equals its session's hold/capture/release rows for that lot;
 * - legs of ended sessions are fully resolved, legs of active sessions untouched;
 * - each ended session has exactly one usage record and an active one none; the record's credits and unpaid
 *   match the session, and what it says was charged equals capture + charge - adjust rows of the session;
 * - the usage_daily rollup equals the records it summarizes.
 */
export async function ledgerProblems(db: Database): Promise<unknown[]> {
  const checks: Record<string, string> = {
    lotRemaining: `
      SELECT a.id, a.remaining_credits, coalesce(sum(CASE t.type WHEN 'grant' THEN t.amount WHEN 'release' THEN t.amount
               WHEN 'adjust' THEN t.amount WHEN 'hold' THEN -t.amount WHEN 'charge' THEN -t.amount
               WHEN 'expire' THEN -t.amount ELSE 0 END), 0) AS ledger
        FROM credit_allocations a LEFT JOIN credit_transactions t ON t.allocation_id = a.id
       GROUP BY a.id HAVING a.remaining_credits <> coalesce(sum(CASE t.type WHEN 'grant' THEN t.amount
               WHEN 'release' THEN t.amount WHEN 'adjust' THEN t.amount WHEN 'hold' THEN -t.amount
               WHEN 'charge' THEN -t.amount WHEN 'expire' THEN -t.amount ELSE 0 END), 0)`,
    lotHeld: `
      WITH l AS (SELECT allocation_id, sum(CASE type WHEN 'hold' THEN amount WHEN 'release' THEN -amount
                        WHEN 'capture' THEN -amount ELSE 0 END) AS held
                   FROM credit_transactions WHERE allocation_id IS NOT NULL GROUP BY allocation_id),
           h AS (SELECT h.allocation_id, sum(h.held_credits - h.captured_credits - h.released_credits) AS held
                   FROM session_holds h JOIN streaming_sessions s ON s.user_id = h.user_id AND s.id = h.session_id
                  WHERE s.status = 'active' GROUP BY h.allocation_id)
      SELECT coalesce(l.allocation_id, h.allocation_id) AS lot, l.held AS ledger, h.held AS legs
        FROM l FULL JOIN h ON h.allocation_id = l.allocation_id
       WHERE coalesce(l.held, 0) <> coalesce(h.held, 0)`,
    legs: `
      WITH g AS (SELECT user_id, session_id, allocation_id,
                        coalesce(sum(amount) FILTER (WHERE type = 'hold'), 0) AS held,
                        coalesce(sum(amount) FILTER (WHERE type = 'capture'), 0) AS captured,
                        coalesce(sum(amount) FILTER (WHERE type = 'release'), 0) AS released
                   FROM credit_transactions
                  WHERE session_id IS NOT NULL AND type IN ('hold', 'capture', 'release')
                  GROUP BY user_id, session_id, allocation_id)
      SELECT coalesce(h.session_id, g.session_id) AS session, coalesce(h.allocation_id, g.allocation_id) AS lot,
             h.held_credits, h.captured_credits, h.released_credits, g.held, g.captured, g.released
        FROM session_holds h FULL JOIN g ON g.user_id = h.user_id AND g.session_id = h.session_id AND g.allocation_id = h.allocation_id
       WHERE h.session_id IS NULL OR g.session_id IS NULL OR h.held_credits <> g.held
          OR h.captured_credits <> g.captured OR h.released_credits <> g.released`,
    legResolution: `
      SELECT h.session_id, h.allocation_id, s.status, h.held_credits, h.captured_credits, h.released_credits
        FROM session_holds h JOIN streaming_sessions s ON s.user_id = h.user_id AND s.id = h.session_id
       WHERE (s.status = 'active' AND (h.captured_credits <> 0 OR h.released_credits <> 0))
          OR (s.status <> 'active' AND h.captured_credits + h.released_credits <> h.held_credits)`,
    sessionAllocated: `
      SELECT s.id, s.allocated_credits, coalesce(sum(h.held_credits), 0) AS legs
        FROM streaming_sessions s LEFT JOIN session_holds h ON h.user_id = s.user_id AND h.session_id = s.id
       GROUP BY s.user_id, s.id HAVING s.allocated_credits <> coalesce(sum(h.held_credits), 0)`,
    sessionUsage: `
      WITH paid AS (SELECT user_id, session_id, sum(CASE type WHEN 'capture' THEN amount WHEN 'charge' THEN amount
                                             WHEN 'adjust' THEN -amount ELSE 0 END) AS paid
                      FROM credit_transactions WHERE session_id IS NOT NULL GROUP BY user_id, session_id),
           records AS (SELECT user_id, session_id, count(*) AS n, sum(credits) AS credits, sum(charged_credits) AS charged,
                              sum(unpaid_credits) AS unpaid
                         FROM usage_records WHERE session_id IS NOT NULL GROUP BY user_id, session_id)
      SELECT s.id, s.status, s.used_credits, s.unpaid_credits, r.n, r.credits, r.charged, r.unpaid, p.paid
        FROM streaming_sessions s LEFT JOIN records r ON r.user_id = s.user_id AND r.session_id = s.id
        LEFT JOIN paid p ON p.user_id = s.user_id AND p.session_id = s.id
       WHERE (s.status = 'active' AND (r.n IS NOT NULL OR coalesce(p.paid, 0) <> 0))
          OR (s.status <> 'active' AND (r.n IS DISTINCT FROM 1 OR r.credits <> s.used_credits
              OR r.unpaid <> s.unpaid_credits OR r.charged <> coalesce(p.paid, 0)))`,
    rollup: `
      WITH r AS (SELECT user_id, (created_at AT TIME ZONE 'UTC')::date AS day, service, operation,
                        coalesce(model_id, '') AS model_id, count(*) AS requests, sum(credits) AS credits,
                        sum(unpaid_credits) AS unpaid, sum(input_tokens) AS input, sum(output_tokens) AS output,
                        sum(cached_input_tokens) AS cached
                   FROM usage_records GROUP BY 1, 2, 3, 4, 5)
      SELECT r.*, d.* FROM r FULL JOIN usage_daily d USING (user_id, day, service, operation, model_id)
       WHERE (r.requests, r.credits, r.unpaid, r.input, r.output, r.cached)
             IS DISTINCT FROM (d.requests, d.credits, d.unpaid_credits, d.input_tokens, d.output_tokens, d.cached_input_tokens)`,
  };
  const problems: unknown[] = [];
  for (const [check, sql] of Object.entries(checks)) {
    const rows = await db.query<object>(sql);
    for (const row of rows) problems.push({ check, ...row });
  }
  return problems;
}

/** Ledger rows of one session, in order: [type, micro-credits, allocation id]. */
export async function ledgerOf(db: Database, sessionId: string): Promise<Array<[string, bigint, string | null]>> {
  const rows = await db.query<{ type: string; amount: string; allocation_id: string | null }>(
    `SELECT type, amount, allocation_id::text FROM credit_transactions WHERE session_id = $1 ORDER BY id`,
    [sessionId],
  );
  return rows.map((r) => [r.type, BigInt(r.amount), r.allocation_id]);
}

/** A lot's remaining micro-credits. */
export async function remainingOf(db: Database, allocationId: string): Promise<bigint> {
  const [row] = await db.query<{ remaining: string }>(`SELECT remaining_credits AS remaining FROM credit_allocations WHERE id = $1`, [allocationId]);
  return BigInt(row.remaining);
}

/** Micro-credits held by a user's active sessions. */
export async function reservedOf(db: Database, userId: string): Promise<bigint> {
  const [row] = await db.query<{ reserved: string }>(
    `SELECT coalesce(sum(allocated_credits), 0) AS reserved FROM streaming_sessions WHERE user_id = $1 AND status = 'active'`,
    [userId],
  );
  return BigInt(row.reserved);
}

/** Makes sessions overdue without sleeping. */
export async function makeOverdue(db: Database, where = `status = 'active'`, bind: unknown[] = []): Promise<void> {
  await db.query(`UPDATE streaming_sessions SET expires_at = now() - interval '1 second' WHERE ${where} RETURNING 1`, bind);
}

/** GET /api/admin/reconcile as an admin: the body, expected to be { ok: true, discrepancies: [] }. */
export async function reconcile(app: Parameters<typeof request>[0]): Promise<{ ok: boolean; discrepancies: unknown[] }> {
  const res = await request(app).get('/api/admin/reconcile').set('Authorization', userWithRole('admin').auth);
  if (res.status !== 200) throw new Error(`reconcile answered ${res.status}: ${JSON.stringify(res.body)}`);
  return res.body;
}
