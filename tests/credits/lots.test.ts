import request from 'supertest';
import { createTestContext, type TestContext } from '../support/context';
import { availableOf, count, grantDirect, micro } from '../support/db';
import { userWithRole } from '../support/tokens';
import { allocate, chargeUsage, discrepancies, holdForSession, lotsOf, resolveSession } from './helpers';

let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext();
});
afterAll(() => ctx.close());

const DAY = 86_400_000;
const supervisor = userWithRole('supervisor');

/** Inserts a lot that has already expired, bypassing the API (which refuses a past expiry). */
async function expiredLot(userId: string, credits: number): Promise<string> {
  await ctx.db.query(`INSERT INTO user_accounts (id) VALUES ($1) ON CONFLICT DO NOTHING RETURNING 1`, [userId]);
  const [row] = await ctx.db.query<{ id: string }>(
    `INSERT INTO credit_allocations (user_id, total_credits, remaining_credits, expires_at, allocated_by)
     VALUES ($1, $2, $2, now() - interval '1 minute', 'test') RETURNING id::text`,
    [userId, micro(credits).toString()],
  );
  await ctx.db.query(
    `INSERT INTO credit_transactions (user_id, type, amount, allocation_id, actor_id) VALUES ($1, 'grant', $2, $3, 'test') RETURNING 1`,
    [userId, micro(credits).toString(), row.id],
  );
  return row.id;
}

describe('consumption order', () => {
  test('When lots of 40 (expires soon), 30 (later), 30 (never) and an expired 50 exist, then holds drain them in that order and never touch the expired one', async () => {
    const user = userWithRole('user');
    // Created in an order different from the consumption order, so id order alone would be wrong.
    const never = (await allocate(ctx, supervisor.auth, { userId: user.id, credits: 30 })).body.allocation.id;
    const later = (await allocate(ctx, supervisor.auth, { userId: user.id, credits: 30, expiresInDays: 60 })).body.allocation.id;
    const soon = (await allocate(ctx, supervisor.auth, { userId: user.id, credits: 40, expiresInDays: 2 })).body.allocation.id;
    const expired = await expiredLot(user.id, 50);
    const remaining = async () => Object.fromEntries((await lotsOf(ctx, user.id)).map((lot) => [lot.id, lot.remaining]));

    const balance = await request(ctx.app).get('/api/credits/balance').set('Authorization', user.auth);
    expect(balance.body.availableCredits).toBe(100);
    expect(balance.body.allocations.map((a: { id: string }) => a.id)).toEqual([soon, later, never]);

    await holdForSession(ctx, user.id, 'order-1', micro(25));
    expect(await remaining()).toEqual({ [soon]: micro(15), [later]: micro(30), [never]: micro(30), [expired]: micro(50) });

    await holdForSession(ctx, user.id, 'order-2', micro(25));
    expect(await remaining()).toEqual({ [soon]: 0n, [later]: micro(20), [never]: micro(30), [expired]: micro(50) });

    await holdForSession(ctx, user.id, 'order-3', micro(30));
    expect(await remaining()).toEqual({ [soon]: 0n, [later]: 0n, [never]: micro(20), [expired]: micro(50) });

    await holdForSession(ctx, user.id, 'order-4', micro(20));
    expect(await remaining()).toEqual({ [soon]: 0n, [later]: 0n, [never]: 0n, [expired]: micro(50) });

    await expect(holdForSession(ctx, user.id, 'order-refused', micro(0.000001))).rejects.toMatchObject({
      code: 'INSUFFICIENT_CREDITS',
      details: { requiredCredits: 0.000001, availableCredits: 0 },
    });
    expect(await count(ctx.db, 'credit_transactions', `allocation_id = $1 AND type <> 'grant'`, [expired])).toBe(0);
    const after = await request(ctx.app).get('/api/credits/balance').set('Authorization', user.auth);
    expect(after.body).toMatchObject({ availableCredits: 0, allocations: [] });
  });

  test('When a usage charge spans lots, then one charge row is written per lot it drew from', async () => {
    const userId = 'span-user';
    const a = await grantDirect(ctx.db, userId, 1, new Date(Date.now() + DAY));
    const b = await grantDirect(ctx.db, userId, 2);
    const c = await grantDirect(ctx.db, userId, 3);

    const result = await chargeUsage(ctx, userId, micro(4.5));

    expect(result).toEqual({ charged: micro(4.5), unpaid: 0n, availableAfter: micro(1.5) });
    const rows = await ctx.db.query<{ allocation_id: string; amount: string }>(
      `SELECT allocation_id::text, amount FROM credit_transactions WHERE user_id = $1 AND type = 'charge' ORDER BY id`,
      [userId],
    );
    expect(rows).toEqual([
      { allocation_id: a, amount: '1000000' },
      { allocation_id: b, amount: '2000000' },
      { allocation_id: c, amount: '1500000' },
    ]);
  });

  test('When a hold is refused for lack of credits, then nothing changes', async () => {
    const userId = 'poor-user';
    await grantDirect(ctx.db, userId, 5);
    const entriesBefore = await count(ctx.db, 'credit_transactions', 'user_id = $1', [userId]);

    await expect(holdForSession(ctx, userId, 'poor-session', micro(5.000001))).rejects.toMatchObject({
      code: 'INSUFFICIENT_CREDITS',
      details: { requiredCredits: 5.000001, availableCredits: 5 },
    });

    expect(await availableOf(ctx.db, userId)).toBe(micro(5));
    expect(await count(ctx.db, 'credit_transactions', 'user_id = $1', [userId])).toBe(entriesBefore);
  });

  test('When usage costs more than is available, then what is available is charged and the rest is unpaid', async () => {
    const userId = 'partial-user';
    await grantDirect(ctx.db, userId, 7);

    const result = await chargeUsage(ctx, userId, micro(10));

    expect(result).toEqual({ charged: micro(7), unpaid: micro(3), availableAfter: 0n });
    expect(await availableOf(ctx.db, userId)).toBe(0n);
  });
});

describe('lot expiry job', () => {
  test('When expireLots runs, then each expired lot with credits left gets one expire row and drops to 0; a second run does nothing', async () => {
    const userId = 'expiry-user';
    const gone = await expiredLot(userId, 12);
    const live = await grantDirect(ctx.db, userId, 8, new Date(Date.now() + DAY));
    await chargeUsage(ctx, userId, micro(1));

    await ctx.services.credits.expireLots();
    const secondRun = await ctx.services.credits.expireLots();

    expect(secondRun).toBe(0);
    expect(Object.fromEntries((await lotsOf(ctx, userId)).map((lot) => [lot.id, lot.remaining]))).toEqual({ [gone]: 0n, [live]: micro(7) });
    const expireRows = await ctx.db.query<{ allocation_id: string; amount: string }>(
      `SELECT allocation_id::text, amount FROM credit_transactions WHERE user_id = $1 AND type = 'expire'`,
      [userId],
    );
    expect(expireRows).toEqual([{ allocation_id: gone, amount: '12000000' }]);
    expect(await discrepancies(ctx)).toEqual([]);
  });

  test('When a lot expires while a session holds part of it, then only the unheld part is expired and a later release into it is expired too', async () => {
    const userId = 'expiry-hold-user';
    const lot = await grantDirect(ctx.db, userId, 10, new Date(Date.now() + DAY));
    await holdForSession(ctx, userId, 'expiry-hold-session', micro(4));
    await ctx.db.query(`UPDATE credit_allocations SET expires_at = now() - interval '1 second' WHERE id = $1 RETURNING 1`, [lot]);

    await ctx.services.credits.expireLots();
    const [afterExpiry] = await lotsOf(ctx, userId);
    await resolveSession(ctx, userId, 'expiry-hold-session', micro(1));

    expect(afterExpiry.remaining).toBe(0n);
    const [afterRelease] = await lotsOf(ctx, userId);
    expect(afterRelease.remaining).toBe(0n);
    const rows = await ctx.db.query<{ type: string; amount: string }>(
      `SELECT type, amount FROM credit_transactions WHERE allocation_id = $1 ORDER BY id`,
      [lot],
    );
    expect(rows.map((r) => [r.type, r.amount])).toEqual([
      ['grant', '10000000'],
      ['hold', '4000000'],
      ['expire', '6000000'],
      ['capture', '1000000'],
      ['release', '3000000'],
      ['expire', '3000000'],
    ]);
    expect(await discrepancies(ctx)).toEqual([]);
  });

  test('When several sweepers run at once (as several instances would), then every expired lot is expired exactly once', async () => {
    const lotIds: string[] = [];
    for (let u = 0; u < 10; u++) for (let l = 0; l < 3; l++) lotIds.push(await expiredLot(`sweep-user-${u}`, 1 + l));

    const counts = await Promise.all(Array.from({ length: 4 }, () => ctx.services.credits.expireLots()));

    expect(counts.reduce((a, b) => a + b, 0)).toBe(30);
    const [row] = await ctx.db.query<{ n: string; total: string }>(
      `SELECT count(*) AS n, sum(amount) AS total FROM credit_transactions WHERE type = 'expire' AND allocation_id = ANY($1::bigint[])`,
      [lotIds],
    );
    expect(row).toEqual({ n: '30', total: String(micro(60)) });
    expect(await discrepancies(ctx)).toEqual([]);
  });

  test('When a user row is locked by a running request, then the sweeper skips that user instead of waiting', async () => {
    const busy = 'sweep-busy-user';
    const lot = await expiredLot(busy, 2);
    let releaseLock!: () => void;
    const held = new Promise<void>((resolve) => (releaseLock = resolve));
    let locked!: () => void;
    const isLocked = new Promise<void>((resolve) => (locked = resolve));
    const blocker = ctx.db.transaction(async (tx) => {
      await ctx.db.query(`SELECT 1 FROM user_accounts WHERE id = $1 FOR UPDATE`, [busy], tx);
      locked();
      await held;
    });
    await isLocked;

    const skipped = await ctx.services.credits.expireLots();
    const [whileLocked] = await lotsOf(ctx, busy);
    releaseLock();
    await blocker;
    const afterwards = await ctx.services.credits.expireLots();

    expect(skipped).toBe(0);
    expect(whileLocked.remaining).toBe(micro(2));
    expect(afterwards).toBe(1);
    expect((await lotsOf(ctx, busy))[0]).toMatchObject({ id: lot, remaining: 0n });
  });
});
