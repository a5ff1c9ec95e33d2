import fc from 'fast-check';
import { AppError } from '../../src/lib/errors';
import { fromDb, type Micro } from '../../src/lib/money';
import { createTestContext, type TestContext } from '../support/context';
import { availableOf } from '../support/db';
import { discrepancies, lotsOf } from '../credits/helpers';
import { recordState } from './helpers';

let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext();
});
afterAll(() => ctx.close());

/**
 * Random sequences of grant / charge (usage record) / refund / adjust / revoke against an independent model
 * written from the contract (docs/credits.md, Corrections): balances, lots, records' charged/unpaid/refunded
 * must match after every step, and reconcile must stay clean.
 */
type Op =
  | { kind: 'grant'; amount: Micro; days: number | null }
  | { kind: 'charge'; amount: Micro }
  | { kind: 'refund'; pick: number; amount: Micro | null }
  | { kind: 'adjust'; amount: Micro; days: number | null }
  | { kind: 'revoke'; pick: number; amount: Micro | null };

const amount = fc.bigInt({ min: 1n, max: 30_000_000n });
const days = fc.option(fc.integer({ min: 1, max: 30 }), { nil: null });
const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant('grant' as const), amount, days }),
  fc.record({ kind: fc.constant('charge' as const), amount }),
  fc.record({ kind: fc.constant('refund' as const), pick: fc.nat(), amount: fc.option(amount, { nil: null }) }),
  fc.record({
    kind: fc.constant('adjust' as const),
    amount: fc.bigInt({ min: -30_000_000n, max: 30_000_000n }).filter((n) => n !== 0n),
    days,
  }),
  fc.record({ kind: fc.constant('revoke' as const), pick: fc.nat(), amount: fc.option(amount, { nil: null }) }),
);

interface ModelLot {
  id: string;
  remaining: Micro;
  expiresAt: number | null;
}
interface ModelRecord {
  id: string;
  credits: Micro;
  unpaid: Micro;
  refunded: Micro;
  /** What each lot paid for the record, net of what was returned to it. */
  paidBy: Map<string, Micro>;
}

const consumption = (a: ModelLot, b: ModelLot) =>
  (a.expiresAt ?? Infinity) - (b.expiresAt ?? Infinity) || Number(BigInt(a.id) - BigInt(b.id));
const min = (a: Micro, b: Micro) => (a < b ? a : b);

class Model {
  lots: ModelLot[] = [];
  records: ModelRecord[] = [];
  live = () => this.lots.filter((lot) => lot.remaining > 0n).sort(consumption);
  available = () => this.live().reduce((sum, lot) => sum + lot.remaining, 0n);
  draw(want: Micro, record?: ModelRecord): void {
    for (const lot of this.live()) {
      if (want === 0n) break;
      const take = min(lot.remaining, want);
      lot.remaining -= take;
      want -= take;
      if (record) record.paidBy.set(lot.id, (record.paidBy.get(lot.id) ?? 0n) + take);
    }
    if (want !== 0n) throw new Error('model drew more than available');
  }
  /** New credits pay the oldest unpaid usage first, up to the amount granted. */
  settle(max: Micro): void {
    let left = max;
    for (const record of this.records) {
      const pay = min(min(record.unpaid, left), this.available());
      if (pay <= 0n) continue;
      this.draw(pay, record);
      record.unpaid -= pay;
      left -= pay;
    }
  }
  charged = (r: ModelRecord) => r.credits - r.unpaid - r.refunded;
}

const ADMIN = 'property-admin';

async function apply(model: Model, userId: string, step: Op): Promise<void> {
  const { credits, corrections } = ctx.services;
  switch (step.kind) {
    case 'grant':
    case 'adjust': {
      if (step.kind === 'grant' || step.amount > 0n) {
        const res =
          step.kind === 'grant'
            ? await credits.allocateCredits(ADMIN, { userId, credits: step.amount, ...(step.days === null ? {} : { expiresInDays: step.days }) }, undefined)
            : await corrections.adjust(
                ADMIN,
                { userId, credits: step.amount, reason: 'p', ...(step.days === null ? {} : { expiresAt: new Date(Date.now() + step.days * 86_400_000).toISOString() }) },
                undefined,
              );
        const allocation = (res.body as { allocation: { id: string; expiresAt: string | null } }).allocation;
        model.lots.push({ id: allocation.id, remaining: step.amount, expiresAt: allocation.expiresAt === null ? null : Date.parse(allocation.expiresAt) });
        model.settle(step.amount);
        return;
      }
      const want = -step.amount;
      const expectInsufficient = model.available() < want;
      let error: unknown = null;
      await corrections.adjust(ADMIN, { userId, credits: step.amount, reason: 'p' }, undefined).catch((e) => (error = e));
      if (expectInsufficient) {
        expect(error).toBeInstanceOf(AppError);
        expect((error as AppError).code).toBe('INSUFFICIENT_CREDITS');
      } else {
        expect(error).toBeNull();
        model.draw(want);
      }
      return;
    }
    case 'charge': {
      const res = await ctx.services.usage.recordUsage({ userId: ADMIN, role: 'admin' }, { service: 'p', operation: 'p', credits: step.amount, userId }, undefined);
      const record: ModelRecord = { id: res.body.usageRecord.id, credits: step.amount, unpaid: 0n, refunded: 0n, paidBy: new Map() };
      const charged = min(step.amount, model.available());
      model.draw(charged, record);
      record.unpaid = step.amount - charged;
      model.records.push(record);
      return;
    }
    case 'refund': {
      if (model.records.length === 0) return;
      const record = model.records[step.pick % model.records.length];
      const refundable = record.credits - record.refunded;
      let error: unknown = null;
      await corrections
        .refund(ADMIN, record.id, { reason: 'p', ...(step.amount === null ? {} : { credits: step.amount }) }, undefined)
        .catch((e) => (error = e));
      const amt = step.amount ?? refundable;
      if (amt > refundable) {
        expect((error as AppError).code).toBe('VALIDATION_ERROR');
        return;
      }
      expect(error).toBeNull();
      const forgiven = min(amt, record.unpaid);
      record.unpaid -= forgiven;
      record.refunded += amt;
      let back = amt - forgiven;
      // Back to the lots that paid, the latest-expiring first (none expire during the test).
      const payers = [...record.paidBy.keys()].map((id) => model.lots.find((lot) => lot.id === id)!).sort(consumption).reverse();
      for (const lot of payers) {
        if (back === 0n) break;
        const take = min(record.paidBy.get(lot.id)!, back);
        lot.remaining += take;
        record.paidBy.set(lot.id, record.paidBy.get(lot.id)! - take);
        back -= take;
      }
      expect(back).toBe(0n);
      return;
    }
    case 'revoke': {
      if (model.lots.length === 0) return;
      const lot = model.lots[step.pick % model.lots.length];
      const res = await corrections.revoke(ADMIN, lot.id, { reason: 'p', ...(step.amount === null ? {} : { credits: step.amount }) }, undefined);
      const revoked = min(step.amount ?? lot.remaining, lot.remaining);
      expect(res.body).toMatchObject({ revokedCredits: Number(revoked) / 1e6, heldCredits: 0 });
      lot.remaining -= revoked;
      return;
    }
  }
}

let runs = 0;

test('When random grants, charges, refunds, adjustments and revocations run, then lots, balances and records match the model and reconcile stays clean', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 20 }), async (steps) => {
      const userId = `prop-corr-${++runs}`;
      const model = new Model();
      // A known user: a negative adjustment of a user never seen is a 404, not part of this model.
      await ctx.db.query(`INSERT INTO user_accounts (id) VALUES ($1) RETURNING 1`, [userId]);
      for (const step of steps) {
        await apply(model, userId, step);
        const lots = await lotsOf(ctx, userId);
        expect(Object.fromEntries(lots.map((l) => [l.id, l.remaining]))).toEqual(Object.fromEntries(model.lots.map((l) => [l.id, l.remaining])));
        expect(await availableOf(ctx.db, userId)).toBe(model.available());
        for (const record of model.records) {
          expect(await recordState(ctx, record.id)).toEqual({
            credits: record.credits,
            charged: model.charged(record),
            unpaid: record.unpaid,
            refunded: record.refunded,
          });
        }
        expect(await discrepancies(ctx)).toEqual([]);
      }
      // The rollups count usage net of refunds, with what is still unpaid.
      const [daily] = await ctx.db.query<{ credits: string | null; unpaid: string | null }>(
        `SELECT sum(credits)::text AS credits, sum(unpaid_credits)::text AS unpaid FROM usage_daily WHERE user_id = $1`,
        [userId],
      );
      expect(fromDb(daily.credits)).toBe(model.records.reduce((s, r) => s + r.credits - r.refunded, 0n));
      expect(fromDb(daily.unpaid)).toBe(model.records.reduce((s, r) => s + r.unpaid, 0n));
    }),
    { numRuns: 30 },
  );
}, 600_000);
