import request from 'supertest';
import { reconcileResponse } from '../../src/schemas/credit.schemas';
import { modelListResponse, modelPriceSchema } from '../../src/schemas/model.schemas';
import { createTestContext, type TestContext } from '../support/context';
import { count, grantDirect, micro } from '../support/db';
import { userWithRole } from '../support/tokens';
import { chargeUsage, holdForSession, resolveSession } from './helpers';

let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext();
});
afterAll(() => ctx.close());

const admin = userWithRole('admin');

describe('GET /api/models', () => {
  test('When anyone signed in lists models, then the shipped default prices are there in credits per 1M tokens', async () => {
    const res = await request(ctx.app).get('/api/models').set('Authorization', userWithRole('user').auth);

    expect(res.status).toBe(200);
    expect(modelListResponse.safeParse(res.body).success).toBe(true);
    expect(res.body.length).toBeGreaterThanOrEqual(10);
    // $2.50 / $10.00 / $1.25 per 1M tokens at 1 credit = 0.01 USD.
    expect(res.body.find((m: { modelId: string }) => m.modelId === 'gpt-4o')).toEqual({
      modelId: 'gpt-4o',
      inputPricePer1M: 250,
      outputPricePer1M: 1000,
      cachedInputPricePer1M: 125,
      cacheWritePricePer1M: 250,
      cacheWrite1hPricePer1M: 250,
      reasoningPricePer1M: 1000,
      priceVersion: 1,
      effectiveFrom: expect.any(String),
    });
  });
});

describe('PUT /api/models/:modelId', () => {
  test('When an admin changes a price, then a new version is effective at once and the old one is kept', async () => {
    const res = await request(ctx.app)
      .put('/api/models/gpt-4.1')
      .set('Authorization', admin.auth)
      .send({ inputPricePer1M: '180.5', outputPricePer1M: 700, cachedInputPricePer1M: 45 });

    expect(res.status).toBe(200);
    expect(modelPriceSchema.safeParse(res.body).success).toBe(true);
    expect(res.body).toMatchObject({ modelId: 'gpt-4.1', priceVersion: 2, inputPricePer1M: 180.5, outputPricePer1M: 700, cachedInputPricePer1M: 45 });
    const listed = await request(ctx.app).get('/api/models').set('Authorization', admin.auth);
    expect(listed.body.find((m: { modelId: string }) => m.modelId === 'gpt-4.1')).toMatchObject({ priceVersion: 2, inputPricePer1M: 180.5 });
    const calculated = await request(ctx.app)
      .post('/api/credits/calculate')
      .set('Authorization', admin.auth)
      .send({ modelId: 'gpt-4.1', inputTokens: 1_000_000, outputTokens: 0 });
    expect(calculated.body).toMatchObject({ priceVersion: 2, credits: 180.5 });
    const versions = await ctx.db.query<{ price_version: number; input_price_per_1m: string }>(
      `SELECT price_version, input_price_per_1m FROM model_prices WHERE model_id = 'gpt-4.1' ORDER BY price_version`,
    );
    expect(versions).toEqual([
      { price_version: 1, input_price_per_1m: '200000000' },
      { price_version: 2, input_price_per_1m: '180500000' },
    ]);
    // A session pinned to version 1 is still billed at version 1.
    expect((await ctx.services.prices.version('gpt-4.1', 1)).inputPer1M).toBe(micro(200));
  });

  test('When an admin prices a model that had none, then it is created as version 1 (201) and cached input defaults to the input price', async () => {
    const res = await request(ctx.app).put('/api/models/my-new-model').set('Authorization', admin.auth).send({ inputPricePer1M: 3, outputPricePer1M: 4 });

    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ modelId: 'my-new-model', priceVersion: 1, inputPricePer1M: 3, outputPricePer1M: 4, cachedInputPricePer1M: 3 });
  });

  test('When several admins change one price at once, then versions are consecutive and none is lost', async () => {
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        request(ctx.app).put('/api/models/claude-3-5-haiku').set('Authorization', admin.auth).send({ inputPricePer1M: 80 + i, outputPricePer1M: 400 }),
      ),
    );

    expect(results.map((r) => r.status)).toEqual(Array(8).fill(200));
    expect(results.map((r) => r.body.priceVersion).sort((a, b) => a - b)).toEqual([2, 3, 4, 5, 6, 7, 8, 9]);
  });

  test.each([['supervisor'], ['user']] as const)('When a %s changes a price, then 403 and nothing is stored', async (role) => {
    const before = await count(ctx.db, 'model_prices');
    const res = await request(ctx.app).put('/api/models/gpt-4o').set('Authorization', userWithRole(role).auth).send({ inputPricePer1M: 0, outputPricePer1M: 0 });
    expect(res.status).toBe(403);
    expect(await count(ctx.db, 'model_prices')).toBe(before);
  });

  test.each([
    ['a negative price', { inputPricePer1M: -1, outputPricePer1M: 1 }],
    ['a missing output price', { inputPricePer1M: 1 }],
    ['seven decimals', { inputPricePer1M: '1.0000001', outputPricePer1M: 1 }],
    ['an unknown field', { inputPricePer1M: 1, outputPricePer1M: 1, priceVersion: 42 }],
  ])('When the body has %s, then 400 and nothing is stored', async (_name, body) => {
    const before = await count(ctx.db, 'model_prices');
    const res = await request(ctx.app).put('/api/models/gpt-4o').set('Authorization', admin.auth).send(body);
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('VALIDATION_ERROR');
    expect(await count(ctx.db, 'model_prices')).toBe(before);
  });

  test('When the model id is not 1-255 printable characters (a control character, 256 characters), then 400', async () => {
    for (const id of ['bad%01model', 'm'.repeat(256)]) {
      const res = await request(ctx.app).put(`/api/models/${id}`).set('Authorization', admin.auth).send({ inputPricePer1M: 1, outputPricePer1M: 1 });
      expect([id, res.status]).toEqual([id, 400]);
    }
  });
});

describe('GET /api/admin/reconcile', () => {
  test('When every movement went through the ledger (grants, charges, holds, captures, releases, expiry), then reconcile is ok', async () => {
    const user = userWithRole('user');
    const soon = await grantDirect(ctx.db, user.id, 50, new Date(Date.now() + 86_400_000));
    await grantDirect(ctx.db, user.id, 50);
    await grantDirect(ctx.db, user.id, 5, new Date(Date.now() - 1000));
    await chargeUsage(ctx, user.id, micro(10));
    await holdForSession(ctx, user.id, `rec-a-${user.id}`, micro(60));
    await holdForSession(ctx, user.id, `rec-b-${user.id}`, micro(5));
    // The lot the hold drew from expires while the session runs: its release is expired too.
    await ctx.db.query(`UPDATE credit_allocations SET expires_at = now() - interval '1 second' WHERE id = $1 RETURNING 1`, [soon]);
    await resolveSession(ctx, user.id, `rec-a-${user.id}`, micro(12.5));
    await ctx.services.credits.expireLots();
    expect(await count(ctx.db, 'credit_transactions', `user_id = $1 AND type = 'expire'`, [user.id])).toBe(2);

    const res = await request(ctx.app).get('/api/admin/reconcile').set('Authorization', admin.auth);

    expect(res.status).toBe(200);
    expect(reconcileResponse.safeParse(res.body).success).toBe(true);
    expect(res.body).toMatchObject({ ok: true, discrepancies: [] });
    expect(res.body.checkedUsers).toBeGreaterThanOrEqual(1);
    expect(res.body.checkedAllocations).toBeGreaterThanOrEqual(2);
  });

  test('When a lot is changed behind the ledger\u2019s back, then reconcile names the lot, the check and both amounts', async () => {
    const user = userWithRole('user');
    const lot = await grantDirect(ctx.db, user.id, 20);
    await ctx.db.query(`UPDATE credit_allocations SET remaining_credits = remaining_credits - 1500000 WHERE id = $1 RETURNING 1`, [lot]);

    const res = await request(ctx.app).get('/api/admin/reconcile').set('Authorization', admin.auth);

    expect(res.body.ok).toBe(false);
    expect(res.body.discrepancies).toContainEqual({ userId: user.id, allocationId: lot, sessionId: null, kind: 'remaining', expected: 20, actual: 18.5 });
    // Put it back so later tests see a clean ledger.
    await ctx.db.query(`UPDATE credit_allocations SET remaining_credits = total_credits WHERE id = $1 RETURNING 1`, [lot]);
  });

  test('When a hold leg disagrees with the ledger or a finished session leaves credits held, then reconcile reports the leg', async () => {
    const user = userWithRole('user');
    const lot = await grantDirect(ctx.db, user.id, 10);
    const session = `rec-leg-${user.id}`;
    await holdForSession(ctx, user.id, session, micro(4));
    // The session ends without capturing or releasing anything: 4 credits are stuck.
    await ctx.db.query(`UPDATE streaming_sessions SET status = 'completed' WHERE id = $1 RETURNING 1`, [session]);

    const res = await request(ctx.app).get('/api/admin/reconcile').set('Authorization', admin.auth);

    expect(res.body.discrepancies).toEqual(
      expect.arrayContaining([
        { userId: user.id, allocationId: lot, sessionId: session, kind: 'leg_unresolved', expected: 4, actual: 0 },
        { userId: user.id, allocationId: lot, sessionId: null, kind: 'held', expected: 4, actual: 0 },
      ]),
    );
    await ctx.db.query(`UPDATE streaming_sessions SET status = 'active' WHERE id = $1 RETURNING 1`, [session]);
    expect((await ctx.services.credits.reconcile()).ok).toBe(true);
  });

  test.each([['supervisor'], ['user']] as const)('When a %s asks for reconcile, then 403', async (role) => {
    const res = await request(ctx.app).get('/api/admin/reconcile').set('Authorization', userWithRole(role).auth);
    expect(res.status).toBe(403);
  });
});
