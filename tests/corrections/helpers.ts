import request from 'supertest';
import type { TestContext } from '../support/context';
import { fromDb, type Micro } from '../../src/lib/money';

export const post = (ctx: TestContext, auth: string, path: string, body: Record<string, unknown>, key?: string) => {
  const req = request(ctx.app).post(path).set('Authorization', auth);
  if (key !== undefined) req.set('Idempotency-Key', key);
  return req.send(body);
};

export const adjust = (ctx: TestContext, auth: string, body: Record<string, unknown>, key?: string) =>
  post(ctx, auth, '/api/credits/adjust', body, key);
export const revoke = (ctx: TestContext, auth: string, allocationId: string, body: Record<string, unknown>, key?: string) =>
  post(ctx, auth, `/api/credits/allocations/${allocationId}/revoke`, body, key);
export const refund = (ctx: TestContext, auth: string, recordId: string, body: Record<string, unknown>, key?: string) =>
  post(ctx, auth, `/api/usage/records/${recordId}/refund`, body, key);
export const recordUsage = (ctx: TestContext, auth: string, body: Record<string, unknown>) =>
  post(ctx, auth, '/api/usage/record', { service: 'chat', operation: 'completion', ...body });

export interface LedgerRow {
  type: string;
  amount: Micro;
  allocationId: string | null;
  usageRecordId: string | null;
  originAllocationId: string | null;
  actorId: string | null;
  note: string | null;
}

/** The user's ledger in id order, straight from the table. */
export async function ledgerOf(ctx: TestContext, userId: string): Promise<LedgerRow[]> {
  const rows = await ctx.db.query<{
    type: string;
    amount: string;
    allocation_id: string | null;
    usage_record_id: string | null;
    origin_allocation_id: string | null;
    actor_id: string | null;
    note: string | null;
  }>(
    `SELECT type, amount::text, allocation_id::text, usage_record_id::text, origin_allocation_id::text, actor_id, note
       FROM credit_transactions WHERE user_id = $1 ORDER BY id`,
    [userId],
  );
  return rows.map((r) => ({
    type: r.type,
    amount: fromDb(r.amount),
    allocationId: r.allocation_id,
    usageRecordId: r.usage_record_id,
    originAllocationId: r.origin_allocation_id,
    actorId: r.actor_id,
    note: r.note,
  }));
}

export interface RecordState {
  credits: Micro;
  charged: Micro;
  unpaid: Micro;
  refunded: Micro;
}

export async function recordState(ctx: TestContext, id: string): Promise<RecordState> {
  const [r] = await ctx.db.query<{ credits: string; charged_credits: string; unpaid_credits: string; refunded_credits: string }>(
    `SELECT credits::text, charged_credits::text, unpaid_credits::text, refunded_credits::text FROM usage_records WHERE id = $1`,
    [id],
  );
  return { credits: fromDb(r.credits), charged: fromDb(r.charged_credits), unpaid: fromDb(r.unpaid_credits), refunded: fromDb(r.refunded_credits) };
}

/** The user's usage_daily totals (credits net of refunds, unpaid). */
export async function rollupOf(ctx: TestContext, userId: string): Promise<{ credits: Micro; unpaid: Micro }> {
  const [r] = await ctx.db.query<{ credits: string | null; unpaid: string | null }>(
    `SELECT sum(credits)::text AS credits, sum(unpaid_credits)::text AS unpaid FROM usage_daily WHERE user_id = $1`,
    [userId],
  );
  return { credits: fromDb(r.credits), unpaid: fromDb(r.unpaid) };
}
