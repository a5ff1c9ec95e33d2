import fc from 'fast-check';
import { formatCredits, fromDb, parseCredits, type Micro } from '../../src/lib/money';
import { createTestContext, type TestContext } from '../support/context';
import { availableOf, grantDirect } from '../support/db';
import { chargeUsage, discrepancies, holdForSession, lotsOf, resolveSession } from './helpers';

let ctx: TestContext;
beforeAll(async () => {
  // Unpaid usage stays unpaid here (a grant does not pay it), so the model's lots are only what this test moves.
  ctx = await createTestContext({ SETTLE_UNPAID_ON_GRANT: 'false' });
});
afterAll(() => ctx.close());

type Op =
  | { kind: 'grant'; amount: Micro; days: number | null }
  | { kind: 'charge'; amount: Micro }
  | { kind: 'expire'; pick: number }
  | { kind: 'hold'; amount: Micro }
  | { kind: 'resolve'; pick: number; capturePercent: number };

const amount = fc.bigInt({ min: 1n, max: 40_000_000n }); // up to 40 credits, any micro-credit
const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant('grant' as const), amount: fc.bigInt({ min: 1n, max: 100_000_000n }), days: fc.option(fc.integer({ min: 1, max: 30 }), { nil: null }) }),
  fc.record({ kind: fc.constant('charge' as const), amount }),
  fc.record({ kind: fc.constant('expire' as const), pick: fc.nat() }),
  fc.record({ kind: fc.constant('hold' as const), amount }),
  fc.record({ kind: fc.constant('resolve' as const), pick: fc.nat(), capturePercent: fc.integer({ min: 0, max: 100 }) }),
);

/** What the ledger should look like, computed independently of the SQL. */
interface ModelLot {
  id: string;
  remaining: Micro;
  expiresAt: number | null;
  expired: boolean;
}
interface ModelSession {
  id: string;
  legs: Map<string, Micro>;
  open: boolean;
}

const consumptionOrder = (a: ModelLot, b: ModelLot) =>
  (a.expiresAt ?? Infinity) - (b.expiresAt ?? Infinity) || Number(BigInt(a.id) - BigInt(b.id));

class Model {
  lots: ModelLot[] = [];
  sessions: ModelSession[] = [];
  live = () => this.lots.filter((lot) => !lot.expired && lot.remaining > 0n).sort(consumptionOrder);
  available = () => this.live().reduce((sum, lot) => sum + lot.remaining, 0n);
  /** Draws like acct_draw; returns what came from which lot. */
  draw(want: Micro): Map<string, Micro> {
    const taken = new Map<string, Micro>();
    for (const lot of this.live()) {
      if (want === 0n) break;
      const take = lot.remaining < want ? lot.remaining : want;
      lot.remaining -= take;
      want -= take;
      taken.set(lot.id, take);
    }
    return taken;
  }
}

let runs = 0;

async function apply(model: Model, userId: string, step: Op): Promise<void> {
  const credits = ctx.services.credits;
  switch (step.kind) {
    case 'grant': {
      const res = await credits.allocateCredits(
        'property-admin',
        { userId, credits: step.amount, ...(step.days === null ? {} : { expiresInDays: step.days }) },
        undefined,
      );
      const allocation = (res.body as { allocation: { id: string; expiresAt: string | null } }).allocation;
      model.lots.push({
        id: allocation.id,
        remaining: step.amount,
        expiresAt: allocation.expiresAt === null ? null : Date.parse(allocation.expiresAt),
        expired: false,
      });
      return;
    }
    case 'charge': {
      // Usage is always recorded: what available credits do not cover is unpaid.
      const available = model.available();
      const result = await chargeUsage(ctx, userId, step.amount);
      const expected = available < step.amount ? available : step.amount;
      model.draw(expected);
      expect(result).toEqual({ charged: expected, unpaid: step.amount - expected, availableAfter: available - expected });
      return;
    }
    case 'expire': {
      if (model.lots.length === 0) return;
      const lot = model.lots[step.pick % model.lots.length];
      const [row] = await ctx.db.query<{ expires_at: Date }>(
        `UPDATE credit_allocations SET expires_at = least(expires_at, now() - interval '1 second') WHERE id = $1 RETURNING expires_at`,
        [lot.id],
      );
      await credits.expireLots();
      lot.expired = true;
      lot.expiresAt = row.expires_at.getTime();
      lot.remaining = 0n;
      return;
    }
    case 'hold': {
      const sessionId = `${userId}-s${model.sessions.length}`;
      if (model.available() < step.amount) {
        await expect(holdForSession(ctx, userId, sessionId, step.amount)).rejects.toMatchObject({ code: 'INSUFFICIENT_CREDITS' });
        return;
      }
      await holdForSession(ctx, userId, sessionId, step.amount);
      model.sessions.push({ id: sessionId, legs: model.draw(step.amount), open: true });
      return;
    }
    case 'resolve': {
      const open = model.sessions.filter((s) => s.open);
      if (open.length === 0) return;
      const session = open[step.pick % open.length];
      const held = [...session.legs.values()].reduce((a, b) => a + b, 0n);
      let toCapture = (held * BigInt(step.capturePercent)) / 100n;
      await resolveSession(ctx, userId, session.id, toCapture);
      // Same leg order as the release code: the lots' current consumption order.
      const legLots = model.lots.filter((lot) => session.legs.has(lot.id)).sort(consumptionOrder);
      for (const lot of legLots) {
        const leg = session.legs.get(lot.id)!;
        const captured = toCapture < leg ? toCapture : leg;
        toCapture -= captured;
        if (!lot.expired) lot.remaining += leg - captured;
      }
      session.open = false;
      return;
    }
  }
}

describe('ledger invariants under random operations', () => {
  test('When grants, usage charges, expiries, holds and finalizes run in any order, then after every step each lot equals its ledger and the balance matches an independent model', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 18 }), async (ops) => {
        const userId = `property-${++runs}`;
        await ctx.db.query(`INSERT INTO user_accounts (id) VALUES ($1) RETURNING 1`, [userId]);
        const model = new Model();
        for (const step of ops) {
          await apply(model, userId, step);

          expect(await discrepancies(ctx)).toEqual([]);
          const stored = await lotsOf(ctx, userId);
          expect(Object.fromEntries(stored.map((lot) => [lot.id, lot.remaining]))).toEqual(
            Object.fromEntries(model.lots.map((lot) => [lot.id, lot.remaining])),
          );
          expect(await availableOf(ctx.db, userId)).toBe(model.available());
          for (const lot of stored) expect(lot.remaining >= 0n && lot.remaining <= lot.total).toBe(true);
        }
      }),
      { numRuns: 25 },
    );
  });
});

describe('amounts add exactly', () => {
  const credits = fc.integer({ min: 1, max: 50_000_000 }).map((n) => n / 1e6); // JSON numbers with up to 6 decimals

  test('When usage of a then b is charged to one account and a+b to an identical one, then both end with the same lots and the same charges', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ credits, days: fc.option(fc.integer({ min: 1, max: 30 }), { nil: null }) }), { minLength: 1, maxLength: 4 }),
        credits,
        credits,
        async (lots, a, b) => {
          const run = ++runs;
          const separately = `additive-${run}-split`;
          const together = `additive-${run}-sum`;
          for (const lot of lots) {
            const expiresAt = lot.days === null ? null : new Date(Date.now() + lot.days * 86_400_000);
            await grantDirect(ctx.db, separately, lot.credits, expiresAt);
            await grantDirect(ctx.db, together, lot.credits, expiresAt);
          }
          const aMicro = parseMicro(a);
          const bMicro = parseMicro(b);
          // The sum as a caller would send it: a decimal string, parsed at the edge like any other amount.
          const sumMicro = parseMicro(formatCredits(aMicro + bMicro));
          expect(sumMicro).toBe(aMicro + bMicro);

          const first = await chargeUsage(ctx, separately, aMicro);
          const second = await chargeUsage(ctx, separately, bMicro);
          const once = await chargeUsage(ctx, together, sumMicro);

          expect(first.charged + second.charged).toBe(once.charged);
          expect(first.unpaid + second.unpaid).toBe(once.unpaid);
          expect((await lotsOf(ctx, separately)).map((lot) => lot.remaining)).toEqual((await lotsOf(ctx, together)).map((lot) => lot.remaining));
          const charged = async (userId: string) => {
            const [row] = await ctx.db.query<{ total: string }>(`SELECT sum(amount) AS total FROM credit_transactions WHERE user_id = $1 AND type = 'charge'`, [userId]);
            return fromDb(row.total);
          };
          expect(await charged(separately)).toBe(await charged(together));
        },
      ),
      { numRuns: 40 },
    );
    expect(await discrepancies(ctx)).toEqual([]);
  });
});

function parseMicro(credits: number | string): Micro {
  const parsed = parseCredits(credits);
  if (!parsed.ok) throw new Error(parsed.error);
  return parsed.value;
}
