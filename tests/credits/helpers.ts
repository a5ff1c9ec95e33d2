import request from 'supertest';
import type { TestContext } from '../support/context';
import { fromDb, type Micro } from '../../src/lib/money';

/** Grants through the API as a supervisor/admin; returns the response. */
export function allocate(ctx: TestContext, auth: string, body: Record<string, unknown>, key?: string) {
  const req = request(ctx.app).post('/api/credits/allocate').set('Authorization', auth);
  if (key !== undefined) req.set('Idempotency-Key', key);
  return req.send(body);
}

export interface LotState {
  id: string;
  total: Micro;
  remaining: Micro;
}

/** The user's lots in id order, straight from the table. */
export async function lotsOf(ctx: TestContext, userId: string): Promise<LotState[]> {
  const rows = await ctx.db.query<{ id: string; total_credits: string; remaining_credits: string }>(
    `SELECT a.id::text AS id, total_credits, remaining_credits FROM credit_allocations a WHERE user_id = $1 ORDER BY a.id`,
    [userId],
  );
  return rows.map((r) => ({ id: r.id, total: fromDb(r.total_credits), remaining: fromDb(r.remaining_credits) }));
}

/** Discrepancies found by the reconcile check (through the service; the HTTP route is tested separately). */
export async function discrepancies(ctx: TestContext) {
  return (await ctx.services.credits.reconcile()).discrepancies;
}

/** A model priced at 1 micro-credit per input token, so a finalize can capture any exact amount. */
export const UNIT_MODEL = 'unit-credit-model';

async function ensureUnitModel(ctx: TestContext): Promise<void> {
  await ctx.db.query(
    `INSERT INTO model_prices (model_id, price_version, input_price_per_1m, output_price_per_1m, cached_input_price_per_1m, created_by)
     VALUES ($1, 1, 1000000, 1000000, 1000000, 'test') ON CONFLICT DO NOTHING RETURNING 1`,
    [UNIT_MODEL],
  );
}

/**
 * Opens a streaming session holding `credits` for the user through the production path
 * (StreamingSessionService.initializeSession -> CreditService.deductCredits: one statement, all or nothing;
 * INSUFFICIENT_CREDITS changes nothing).
 */
export async function holdForSession(ctx: TestContext, userId: string, sessionId: string, credits: Micro) {
  await ensureUnitModel(ctx);
  const res = await ctx.services.sessions.initializeSession({ userId, role: 'user' }, { sessionId, modelId: UNIT_MODEL, estimatedCredits: credits });
  return { held: credits, session: res.body };
}

/**
 * Ends a session opened by holdForSession through the production path: finalize (or abort with counts)
 * capturing exactly `capture` micro-credits (at most the hold) and releasing the rest to the same lots.
 */
export async function resolveSession(ctx: TestContext, userId: string, sessionId: string, capture: Micro, status: 'completed' | 'aborted' = 'completed') {
  const caller = { userId, role: 'user' as const };
  const counts = { sessionId, actualInputTokens: Number(capture), actualOutputTokens: 0 };
  return status === 'completed' ? ctx.services.sessions.finalizeSession(caller, counts) : ctx.services.sessions.abortSession(caller, counts);
}

/**
 * Charges `amount` through the production path for usage (UsageService.recordUsage with given credits, recorded by
 * an admin): drawn from lots in consumption order; what they do not cover is recorded as unpaid.
 */
export async function chargeUsage(ctx: TestContext, userId: string, amount: Micro) {
  const res = await ctx.services.usage.recordUsage({ userId: 'test-admin', role: 'admin' }, { userId, service: 'test', operation: 'charge', credits: amount }, undefined);
  const body = res.body;
  const charged = BigInt(Math.round(body.chargedCredits * 1_000_000));
  return { charged, unpaid: amount - charged, availableAfter: BigInt(Math.round(body.availableCredits * 1_000_000)) };
}
