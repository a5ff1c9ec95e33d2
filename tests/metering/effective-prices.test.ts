import request from 'supertest';
import { createTestContext, type TestContext } from '../support/context';
import { grantDirect } from '../support/db';
import { userWithRole } from '../support/tokens';

let ctx: TestContext;
const admin = userWithRole('admin');
beforeAll(async () => {
  ctx = await createTestContext();
});
afterAll(() => ctx.close());
afterEach(async () => {
  const res = await request(ctx.app).get('/api/admin/reconcile').set('Authorization', admin.auth);
  expect(res.body).toMatchObject({ ok: true, discrepancies: [] });
});

const put = (modelId: string, body: object) => request(ctx.app).put(`/api/models/${modelId}`).set('Authorization', admin.auth).send(body);
const post = (path: string, auth: string, body: object) => request(ctx.app).post(path).set('Authorization', auth).send(body);
const listed = async (modelId: string) =>
  ((await request(ctx.app).get('/api/models').set('Authorization', userWithRole('user').auth)).body as { modelId: string }[]).find((m) => m.modelId === modelId);

/** Moves a scheduled version's start into the past, as the clock passing it would (no sleeping in tests). */
const letTimePass = (modelId: string, version: number) =>
  ctx.db.query(`UPDATE model_prices SET effective_from = clock_timestamp() WHERE model_id = $1 AND price_version = $2 RETURNING 1`, [modelId, version]);

describe('effective-dated prices', () => {
  test('When a version is scheduled for later, then GET /api/models keeps the one in effect now and /versions lists both until it starts', async () => {
    expect((await put('sched-model', { inputPricePer1M: 1, outputPricePer1M: 2 })).status).toBe(201);
    const later = new Date(Date.now() + 3_600_000).toISOString();
    const res = await put('sched-model', { inputPricePer1M: 10, outputPricePer1M: 20, cacheWritePricePer1M: 12.5, effectiveFrom: later });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ priceVersion: 2, inputPricePer1M: 10, cacheWritePricePer1M: 12.5, effectiveFrom: later });

    expect(await listed('sched-model')).toMatchObject({ priceVersion: 1, inputPricePer1M: 1 });
    const versions = await request(ctx.app).get('/api/models/sched-model/versions').set('Authorization', admin.auth);
    expect(versions.status).toBe(200);
    expect(versions.body.data.map((v: { priceVersion: number; inEffect: boolean }) => [v.priceVersion, v.inEffect])).toEqual([
      [1, true],
      [2, false],
    ]);
    const calc = await post('/api/credits/calculate', userWithRole('user').auth, { modelId: 'sched-model', inputTokens: 1_000_000, outputTokens: 0 });
    expect(calc.body).toMatchObject({ priceVersion: 1, credits: 1 });

    await letTimePass('sched-model', 2);
    expect(await listed('sched-model')).toMatchObject({ priceVersion: 2, inputPricePer1M: 10 });
  });

  test('When /versions is paged, then it follows the list rules: limit, a cursor that chains, 400 for bad ones', async () => {
    for (let i = 1; i <= 3; i++) expect((await put('paged-model', { inputPricePer1M: i, outputPricePer1M: i })).status).toBe(i === 1 ? 201 : 200);
    const get = (query: string) => request(ctx.app).get(`/api/models/paged-model/versions${query}`).set('Authorization', admin.auth);
    const first = await get('?limit=2');
    expect(first.status).toBe(200);
    expect(first.body.data.map((v: { priceVersion: number; inEffect: boolean }) => [v.priceVersion, v.inEffect])).toEqual([
      [1, false],
      [2, false],
    ]);
    const second = await get(`?limit=2&cursor=${first.body.nextCursor}`);
    expect(second.body.data.map((v: { priceVersion: number; inEffect: boolean }) => [v.priceVersion, v.inEffect])).toEqual([[3, true]]);
    expect(second.body.nextCursor).toBeNull();
    expect((await get('')).body.data).toHaveLength(3);
    for (const bad of ['?limit=0', '?limit=501', '?limit=abc', '?cursor=bogus', `?cursor=${Buffer.from('["99999999999"]').toString('base64url')}`, '?lmit=2']) {
      const res = await get(bad);
      expect([bad, res.status, res.body.error?.code]).toEqual([bad, 400, 'VALIDATION_ERROR']);
    }
  });

  test('When effectiveFrom is in the past, or the model is unknown to /versions, then 400 / 404', async () => {
    const past = await put('past-model', { inputPricePer1M: 1, outputPricePer1M: 1, effectiveFrom: '2020-01-01T00:00:00Z' });
    expect(past.status).toBe(400);
    expect(past.body.error.details.problems[0].path).toBe('effectiveFrom');
    const missing = await request(ctx.app).get('/api/models/never-priced/versions').set('Authorization', admin.auth);
    expect(missing.status).toBe(404);
  });

  test('When the price changes between initialize and finalize, then the session is billed at the version it started with', async () => {
    await put('pinned-model', { inputPricePer1M: 1000, outputPricePer1M: 1000 });
    const user = userWithRole('user');
    await grantDirect(ctx.db, user.id, 100);
    const init = await post('/api/streaming-sessions/initialize', user.auth, { modelId: 'pinned-model', estimatedInputTokens: 1000, estimatedOutputTokens: 1000 });
    expect(init.body.priceVersion).toBe(1);
    await put('pinned-model', { inputPricePer1M: 5000, outputPricePer1M: 5000 });
    const fin = await post('/api/streaming-sessions/finalize', user.auth, { sessionId: init.body.sessionId, actualInputTokens: 1000, actualOutputTokens: 1000 });
    expect(fin.body.usedCredits).toBe(2);
    const [row] = await ctx.db.query<{ price_version: number }>(`SELECT price_version FROM usage_records WHERE session_id = $1`, [init.body.sessionId]);
    expect(row.price_version).toBe(1);
  });

  test('When 20 admins change one price at once, then the versions are consecutive and none is lost', async () => {
    await put('busy-model', { inputPricePer1M: 1, outputPricePer1M: 1 });
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => put('busy-model', { inputPricePer1M: i + 2, outputPricePer1M: 1 })));
    expect(results.every((r) => r.status === 200)).toBe(true);
    expect(results.map((r) => r.body.priceVersion).sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i + 2));
  });

  test('When a price change races 200 initializes, then each session is billed at the version it was initialized with', async () => {
    await put('race-model', { inputPricePer1M: 1000, outputPricePer1M: 1000 });
    const users = Array.from({ length: 20 }, () => userWithRole('user'));
    for (const u of users) await grantDirect(ctx.db, u.id, 1000);
    const inits = Array.from({ length: 200 }, (_, i) =>
      post('/api/streaming-sessions/initialize', users[i % 20].auth, { modelId: 'race-model', estimatedInputTokens: 1000, estimatedOutputTokens: 0 }),
    );
    const change = put('race-model', { inputPricePer1M: 3000, outputPricePer1M: 3000 });
    const [sessions, changed] = await Promise.all([Promise.all(inits), change]);
    expect(changed.status).toBe(200);
    expect(sessions.every((s) => s.status === 201)).toBe(true);

    const perVersion = { 1: 1, 2: 3 } as Record<number, number>;
    const settled = await Promise.all(
      sessions.map((s, i) => post('/api/streaming-sessions/finalize', users[i % 20].auth, { sessionId: s.body.sessionId, actualInputTokens: 1000, actualOutputTokens: 0 })),
    );
    sessions.forEach((s, i) => {
      expect(s.body.estimatedCredits).toBe(perVersion[s.body.priceVersion]);
      expect(settled[i].body.usedCredits).toBe(perVersion[s.body.priceVersion]);
    });
    const rows = await ctx.db.query<{ id: string; price_version: number; used_credits: string }>(
      `SELECT s.id, s.price_version, r.credits::text AS used_credits FROM streaming_sessions s JOIN usage_records r ON r.session_id = s.id
        WHERE s.model_id = 'race-model'`,
    );
    expect(rows).toHaveLength(200);
    for (const row of rows) expect(BigInt(row.used_credits)).toBe(BigInt(perVersion[row.price_version] * 1_000_000));
  });
});
