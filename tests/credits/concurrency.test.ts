import type { Server } from 'node:http';
import request from 'supertest';
import { AppError } from '../../src/lib/errors';
import { createTestContext, type TestContext } from '../support/context';
import { availableOf, count, grantDirect, micro } from '../support/db';
import { userWithRole } from '../support/tokens';
import { chargeUsage, discrepancies, holdForSession, lotsOf } from './helpers';

let ctx: TestContext;
let server: Server;
beforeAll(async () => {
  ctx = await createTestContext();
  server = ctx.app.listen(0);
});
afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  await ctx.close();
});

describe('concurrent holds and charges', () => {
  test('When 200 session holds of 1 credit race against a balance of 100, then exactly 100 succeed, the rest get INSUFFICIENT_CREDITS, the balance is 0 and reconcile is clean', async () => {
    const userId = 'race-200';
    // Spread over lots with different expiries so the race also crosses lot boundaries.
    await grantDirect(ctx.db, userId, 25, new Date(Date.now() + 86_400_000));
    await grantDirect(ctx.db, userId, 25, new Date(Date.now() + 2 * 86_400_000));
    await grantDirect(ctx.db, userId, 25);
    await grantDirect(ctx.db, userId, 25);

    const results = await Promise.allSettled(
      Array.from({ length: 200 }, (_, i) => holdForSession(ctx, userId, `race-${i}`, micro(1))),
    );

    const succeeded = results.filter((r) => r.status === 'fulfilled');
    const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(succeeded).toHaveLength(100);
    expect(failed).toHaveLength(100);
    for (const failure of failed) {
      expect(failure.reason).toBeInstanceOf(AppError);
      expect(failure.reason.code).toBe('INSUFFICIENT_CREDITS');
      expect(failure.reason.details).toEqual({ requiredCredits: 1, availableCredits: 0 });
    }
    expect(await availableOf(ctx.db, userId)).toBe(0n);
    expect((await lotsOf(ctx, userId)).map((lot) => lot.remaining)).toEqual([0n, 0n, 0n, 0n]);
    expect(await count(ctx.db, 'credit_transactions', `user_id = $1 AND type = 'hold'`, [userId])).toBe(100);
    expect(await discrepancies(ctx)).toEqual([]);
  });

  test('When 50 usage records of 3 credits race against 100, then exactly 100 credits are charged and the rest is unpaid', async () => {
    const userId = 'race-partial';
    await grantDirect(ctx.db, userId, 100);

    const results = await Promise.all(
      Array.from({ length: 50 }, () => chargeUsage(ctx, userId, micro(3))),
    );

    const charged = results.reduce((sum, r) => sum + r.charged, 0n);
    const unpaid = results.reduce((sum, r) => sum + r.unpaid, 0n);
    expect(charged).toBe(micro(100));
    expect(unpaid).toBe(micro(150 - 100));
    expect(results.filter((r) => r.charged > 0n && r.charged < micro(3))).toHaveLength(1);
    expect(await availableOf(ctx.db, userId)).toBe(0n);
    expect(await discrepancies(ctx)).toEqual([]);
  });
});

describe('idempotent allocate', () => {
  test('When 20 allocates with one Idempotency-Key race, then one grant is made and the other 19 replay it with Idempotent-Replayed: true', async () => {
    const supervisor = userWithRole('supervisor');
    const body = { userId: 'idem-target', credits: 42.5, note: 'monthly' };

    const responses = await Promise.all(
      Array.from({ length: 20 }, () =>
        request(server).post('/api/credits/allocate').set('Authorization', supervisor.auth).set('Idempotency-Key', 'grant-2026-11').send(body),
      ),
    );

    expect(responses.map((r) => r.status)).toEqual(Array(20).fill(201));
    expect(responses.filter((r) => r.headers['idempotent-replayed'] === 'true')).toHaveLength(19);
    const allocationIds = new Set(responses.map((r) => r.body.allocation.id));
    expect(allocationIds.size).toBe(1);
    const first = responses.find((r) => r.headers['idempotent-replayed'] === undefined)!;
    for (const r of responses) expect(r.body).toEqual(first.body);
    expect(await count(ctx.db, 'credit_allocations', 'user_id = $1', ['idem-target'])).toBe(1);
    expect(await count(ctx.db, 'credit_transactions', `user_id = $1 AND type = 'grant'`, ['idem-target'])).toBe(1);
    expect(await availableOf(ctx.db, 'idem-target')).toBe(micro(42.5));
  });

  test('When the same key comes back with another body, then 422 IDEMPOTENCY_KEY_REUSED and nothing more is granted', async () => {
    const supervisor = userWithRole('supervisor');
    const key = 'reused-key';
    await request(server).post('/api/credits/allocate').set('Authorization', supervisor.auth).set('Idempotency-Key', key).send({ userId: 'idem-reuse', credits: 10 }).expect(201);

    const res = await request(server)
      .post('/api/credits/allocate')
      .set('Authorization', supervisor.auth)
      .set('Idempotency-Key', key)
      .send({ userId: 'idem-reuse', credits: 11 });

    expect(res.status).toBe(422);
    expect(res.body.error.code).toBe('IDEMPOTENCY_KEY_REUSED');
    expect(await count(ctx.db, 'credit_allocations', 'user_id = $1', ['idem-reuse'])).toBe(1);
    expect(await availableOf(ctx.db, 'idem-reuse')).toBe(micro(10));
  });

  test('When two different callers use the same key, then each gets their own grant (keys are scoped to the caller)', async () => {
    const one = userWithRole('supervisor');
    const two = userWithRole('admin');
    const body = { userId: 'idem-scoped', credits: 5 };

    const a = await request(server).post('/api/credits/allocate').set('Authorization', one.auth).set('Idempotency-Key', 'shared').send(body);
    const b = await request(server).post('/api/credits/allocate').set('Authorization', two.auth).set('Idempotency-Key', 'shared').send(body);

    expect([a.status, b.status]).toEqual([201, 201]);
    expect(b.headers['idempotent-replayed']).toBeUndefined();
    expect(a.body.allocation.id).not.toBe(b.body.allocation.id);
    expect(await availableOf(ctx.db, 'idem-scoped')).toBe(micro(10));
  });

  test('When 20 allocates without a key race for one user, then all 20 are granted and the balance is their exact sum', async () => {
    const supervisor = userWithRole('supervisor');

    const responses = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        request(server).post('/api/credits/allocate').set('Authorization', supervisor.auth).send({ userId: 'many-grants', credits: `0.${String(i + 1).padStart(6, '0')}` }),
      ),
    );

    expect(responses.map((r) => r.status)).toEqual(Array(20).fill(201));
    // 0.000001 + ... + 0.000020 = 0.000210
    expect(await availableOf(ctx.db, 'many-grants')).toBe(210n);
    expect(await discrepancies(ctx)).toEqual([]);
  });
});
