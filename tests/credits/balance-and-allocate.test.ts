import request from 'supertest';
import { allocateResponse, balanceSchema, checkResponse, calculateResponse, transactionsResponse } from '../../src/schemas/credit.schemas';
import { createTestContext, type TestContext } from '../support/context';
import { count, grantDirect, micro } from '../support/db';
import { userWithRole } from '../support/tokens';
import { allocate, chargeUsage, holdForSession } from './helpers';

let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext();
});
afterAll(() => ctx.close());

const DAY = 24 * 60 * 60 * 1000;
const inDays = (days: number) => new Date(Date.now() + days * DAY);

describe('GET /api/credits/balance', () => {
  test('When a user has live, expired and held credits, then the balance counts only live lots, reserves what sessions hold and flags what expires within 7 days', async () => {
    const alice = userWithRole('user');
    const soon = await grantDirect(ctx.db, alice.id, 10, inDays(2));
    const later = await grantDirect(ctx.db, alice.id, 20, inDays(30));
    const never = await grantDirect(ctx.db, alice.id, 5.5);
    await grantDirect(ctx.db, alice.id, 7, new Date(Date.now() - 60_000));
    await holdForSession(ctx, alice.id, `s-${alice.id}`, micro(4));

    const res = await request(ctx.app).get('/api/credits/balance').set('Authorization', alice.auth);

    expect(res.status).toBe(200);
    expect(balanceSchema.safeParse(res.body).success).toBe(true);
    expect(res.body).toMatchObject({
      userId: alice.id,
      availableCredits: 31.5,
      reservedCredits: 4,
      expiringSoon: { credits: 6 },
    });
    const before = Date.parse(res.body.expiringSoon.before);
    expect(Math.abs(before - inDays(7).getTime())).toBeLessThan(60_000);
    expect(res.body.allocations.map((a: { id: string; remainingCredits: number }) => [a.id, a.remainingCredits])).toEqual([
      [soon, 6],
      [later, 20],
      [never, 5.5],
    ]);
    expect(res.body.allocations[0]).toEqual({
      id: soon,
      totalCredits: 10,
      remainingCredits: 6,
      allocatedBy: 'test',
      expiresAt: expect.any(String),
      createdAt: expect.any(String),
      note: null,
    });
  });

  test('When a user has never received credits, then every amount is 0 and there are no allocations', async () => {
    const bob = userWithRole('user');
    const res = await request(ctx.app).get('/api/credits/balance').set('Authorization', bob.auth);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ userId: bob.id, availableCredits: 0, reservedCredits: 0, expiringSoon: { credits: 0 }, allocations: [] });
  });
});

describe('GET /api/credits/balance/:userId', () => {
  test('When a supervisor asks for a known user, then that user\u2019s balance is returned', async () => {
    const supervisor = userWithRole('supervisor');
    const carol = userWithRole('user');
    await grantDirect(ctx.db, carol.id, 12.25);

    const res = await request(ctx.app).get(`/api/credits/balance/${carol.id}`).set('Authorization', supervisor.auth);

    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ userId: carol.id, availableCredits: 12.25 });
  });

  test('When a supervisor asks for a user never seen, then 404 NOT_FOUND and no user is created', async () => {
    const supervisor = userWithRole('supervisor');
    const res = await request(ctx.app).get('/api/credits/balance/nobody-ever').set('Authorization', supervisor.auth);
    expect(res.status).toBe(404);
    expect(res.body.error.code).toBe('NOT_FOUND');
    expect(await count(ctx.db, 'user_accounts', 'id = $1', ['nobody-ever'])).toBe(0);
  });

  test('When a user asks for someone else\u2019s balance, then 403 FORBIDDEN', async () => {
    const user = userWithRole('user');
    const other = userWithRole('user');
    await grantDirect(ctx.db, other.id, 1);
    const res = await request(ctx.app).get(`/api/credits/balance/${other.id}`).set('Authorization', user.auth);
    expect(res.status).toBe(403);
    expect(res.body.error.code).toBe('FORBIDDEN');
  });
});

describe('POST /api/credits/check', () => {
  test('When the amount is covered, then sufficient is true; when it is not, false, and nothing changes', async () => {
    const dave = userWithRole('user');
    await grantDirect(ctx.db, dave.id, 10);

    const enough = await request(ctx.app).post('/api/credits/check').set('Authorization', dave.auth).send({ credits: 10 });
    const tooMuch = await request(ctx.app).post('/api/credits/check').set('Authorization', dave.auth).send({ credits: '10.000001' });

    expect(enough.status).toBe(200);
    expect(checkResponse.safeParse(enough.body).success).toBe(true);
    expect(enough.body).toEqual({ sufficient: true, requiredCredits: 10, availableCredits: 10 });
    expect(tooMuch.body).toEqual({ sufficient: false, requiredCredits: 10.000001, availableCredits: 10 });
    expect(await count(ctx.db, 'credit_transactions', 'user_id = $1', [dave.id])).toBe(1);
  });

  test('When tokens of a model are given, then the required credits are their cost at the current price', async () => {
    const erin = userWithRole('user');
    await grantDirect(ctx.db, erin.id, 1);

    // gpt-4o: 250 credits per 1M input tokens, 1000 per 1M output tokens.
    const res = await request(ctx.app)
      .post('/api/credits/check')
      .set('Authorization', erin.auth)
      .send({ modelId: 'gpt-4o', inputTokens: 2000, outputTokens: 500 });

    expect(res.status).toBe(200);
    expect(res.body).toEqual({ sufficient: true, requiredCredits: 1, availableCredits: 1 });
  });

  test.each([
    ['an unknown model', 'UNKNOWN_MODEL', { modelId: 'no-such-model', inputTokens: 1, outputTokens: 1 }],
    ['both credits and tokens', 'VALIDATION_ERROR', { credits: 1, modelId: 'gpt-4o', inputTokens: 1, outputTokens: 1 }],
    ['neither credits nor tokens', 'VALIDATION_ERROR', {}],
    ['tokens without outputTokens', 'VALIDATION_ERROR', { modelId: 'gpt-4o', inputTokens: 1 }],
    ['credits 0', 'VALIDATION_ERROR', { credits: 0 }],
    ['an unknown field', 'VALIDATION_ERROR', { credits: 1, userId: 'someone-else' }],
  ])('When the body has %s, then 400 %s', async (_name, code, body) => {
    const res = await request(ctx.app).post('/api/credits/check').set('Authorization', userWithRole('user').auth).send(body);
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe(code);
  });
});

describe('POST /api/credits/calculate', () => {
  test('When tokens are priced, then the cost is exact and the price version is named', async () => {
    const res = await request(ctx.app)
      .post('/api/credits/calculate')
      .set('Authorization', userWithRole('user').auth)
      .send({ modelId: 'gpt-4o', inputTokens: 1_000_000, outputTokens: 1_000_000, cachedInputTokens: 400_000 });

    expect(res.status).toBe(200);
    expect(calculateResponse.safeParse(res.body).success).toBe(true);
    // 600k uncached x 250/1M + 400k cached x 125/1M + 1M output x 1000/1M
    expect(res.body).toEqual({ modelId: 'gpt-4o', priceVersion: 1, credits: 1200, breakdown: { input: 150, cachedInput: 50, cacheWrite: 0, cacheWrite1h: 0, output: 1000, reasoning: 0 } });
  });

  test('When the exact cost has a fraction of a micro-credit, then it is rounded up', async () => {
    // gpt-4o-mini cached input: 7.5 credits per 1M tokens = 7.5 micro-credits per token.
    const res = await request(ctx.app)
      .post('/api/credits/calculate')
      .set('Authorization', userWithRole('user').auth)
      .send({ modelId: 'gpt-4o-mini', inputTokens: 3, outputTokens: 0, cachedInputTokens: 3 });

    expect(res.status).toBe(200);
    expect(res.body.credits).toBe(0.000023);
  });

  test('When one token costs far less than a micro-credit, then it still costs one micro-credit, never zero', async () => {
    const admin = userWithRole('admin');
    await request(ctx.app)
      .put('/api/models/tiny-model')
      .set('Authorization', admin.auth)
      .send({ inputPricePer1M: 0.000001, outputPricePer1M: 0.000001 })
      .expect(201);

    const res = await request(ctx.app)
      .post('/api/credits/calculate')
      .set('Authorization', userWithRole('user').auth)
      .send({ modelId: 'tiny-model', inputTokens: 1, outputTokens: 0 });

    expect(res.body.credits).toBe(0.000001);
  });

  test('When the model has no price, then 400 UNKNOWN_MODEL', async () => {
    const res = await request(ctx.app)
      .post('/api/credits/calculate')
      .set('Authorization', userWithRole('user').auth)
      .send({ modelId: 'gpt-99', inputTokens: 10, outputTokens: 10 });
    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({ code: 'UNKNOWN_MODEL', details: { modelId: 'gpt-99' } });
  });

  test('When cached tokens exceed input tokens, then 400 VALIDATION_ERROR naming cachedInputTokens', async () => {
    const res = await request(ctx.app)
      .post('/api/credits/calculate')
      .set('Authorization', userWithRole('user').auth)
      .send({ modelId: 'gpt-4o', inputTokens: 1, outputTokens: 0, cachedInputTokens: 2 });
    expect(res.status).toBe(400);
    expect(res.body.error.details.problems).toEqual([expect.objectContaining({ path: 'cachedInputTokens' })]);
  });
});

describe('POST /api/credits/allocate', () => {
  test('When a supervisor allocates to an unknown user, then the user is created, the lot is stored with allocatedBy = caller and a grant is written', async () => {
    const supervisor = userWithRole('supervisor');
    const target = `new-user-${Date.now()}`;

    const res = await allocate(ctx, supervisor.auth, { userId: target, credits: '250.123456', expiresInDays: 30, note: 'welcome' });

    expect(res.status).toBe(201);
    expect(allocateResponse.safeParse(res.body).success).toBe(true);
    expect(res.body.allocation).toMatchObject({ totalCredits: 250.123456, remainingCredits: 250.123456, allocatedBy: supervisor.id, note: 'welcome' });
    expect(Math.abs(Date.parse(res.body.allocation.expiresAt) - Date.now() - 30 * DAY)).toBeLessThan(60_000);
    expect(res.body.balance).toMatchObject({ userId: target, availableCredits: 250.123456 });
    const [lot] = await ctx.db.query<{ total_credits: string; allocated_by: string }>(
      `SELECT total_credits, allocated_by FROM credit_allocations WHERE user_id = $1`,
      [target],
    );
    expect(lot).toEqual({ total_credits: '250123456', allocated_by: supervisor.id });
    expect(await count(ctx.db, 'user_accounts', 'id = $1', [target])).toBe(1);
    expect(await count(ctx.db, 'credit_transactions', `user_id = $1 AND type = 'grant' AND actor_id = $2`, [target, supervisor.id])).toBe(1);
  });

  test('When an admin allocates with an explicit future expiresAt, then that expiry is stored', async () => {
    const admin = userWithRole('admin');
    const expiresAt = new Date(Date.now() + 3 * DAY).toISOString();

    const res = await allocate(ctx, admin.auth, { userId: 'frank', credits: 1, expiresAt });

    expect(res.status).toBe(201);
    expect(res.body.allocation.expiresAt).toBe(expiresAt);
  });

  test('When a user calls allocate, then 403 FORBIDDEN and nothing is stored', async () => {
    const user = userWithRole('user');
    const lotsBefore = await count(ctx.db, 'credit_allocations');

    const res = await allocate(ctx, user.auth, { userId: user.id, credits: 1000 });

    expect(res.status).toBe(403);
    expect(res.body.error.code).toBe('FORBIDDEN');
    expect(await count(ctx.db, 'credit_allocations')).toBe(lotsBefore);
  });
});

describe('GET /api/credits/transactions', () => {
  test('When a user reads their ledger, then entries come newest first with positive credits and a signed balanceChange, page by page', async () => {
    const gina = userWithRole('user');
    await grantDirect(ctx.db, gina.id, 10);
    await chargeUsage(ctx, gina.id, micro(2.5));
    await holdForSession(ctx, gina.id, `s-${gina.id}`, micro(1));

    const first = await request(ctx.app).get('/api/credits/transactions?limit=2').set('Authorization', gina.auth);
    const second = await request(ctx.app)
      .get(`/api/credits/transactions?limit=2&cursor=${first.body.nextCursor}`)
      .set('Authorization', gina.auth);

    expect(first.status).toBe(200);
    expect(transactionsResponse.safeParse(first.body).success).toBe(true);
    expect(first.body.data.map((t: { type: string; credits: number; balanceChange: number }) => [t.type, t.credits, t.balanceChange])).toEqual([
      ['hold', 1, -1],
      ['charge', 2.5, -2.5],
    ]);
    expect(first.body.data[0]).toMatchObject({ sessionId: `s-${gina.id}`, allocationId: expect.any(String) });
    expect(first.body.nextCursor).toEqual(expect.any(String));
    expect(second.body.data.map((t: { type: string; balanceChange: number }) => [t.type, t.balanceChange])).toEqual([['grant', 10]]);
    expect(second.body.nextCursor).toBeNull();
  });

  test('When a supervisor passes ?userId=, then that user\u2019s ledger is returned; for a user never seen, 404', async () => {
    const supervisor = userWithRole('supervisor');
    const hank = userWithRole('user');
    await grantDirect(ctx.db, hank.id, 3);

    const res = await request(ctx.app).get(`/api/credits/transactions?userId=${hank.id}`).set('Authorization', supervisor.auth);
    const unknown = await request(ctx.app).get('/api/credits/transactions?userId=ghost').set('Authorization', supervisor.auth);

    expect(res.status).toBe(200);
    expect(res.body.data).toHaveLength(1);
    expect(res.body.data[0]).toMatchObject({ type: 'grant', credits: 3 });
    expect(unknown.status).toBe(404);
  });

  test('When a user passes someone else\u2019s userId, then 403 FORBIDDEN', async () => {
    const user = userWithRole('user');
    const res = await request(ctx.app).get('/api/credits/transactions?userId=someone-else').set('Authorization', user.auth);
    expect(res.status).toBe(403);
  });

  test.each([['not-a-cursor'], [Buffer.from('["abc"]').toString('base64url')]])('When the cursor is %p, then 400 VALIDATION_ERROR', async (cursor) => {
    const res = await request(ctx.app).get(`/api/credits/transactions?cursor=${cursor}`).set('Authorization', userWithRole('user').auth);
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('VALIDATION_ERROR');
  });
});
