import request from 'supertest';
import { createTestContext, type TestContext } from '../support/context';
import { grantDirect } from '../support/db';
import { userWithRole } from '../support/tokens';

/**
 * Token kinds through every endpoint that takes counts. The model has round prices per token, in
 * micro-credits: input 1000, cachedInput 100, cacheWrite 1250, cacheWrite1h 2000, output 4000, reasoning 8000.
 */
let ctx: TestContext;
const admin = userWithRole('admin');
const MODEL = 'kinds-model';

beforeAll(async () => {
  ctx = await createTestContext();
  const res = await request(ctx.app).put(`/api/models/${MODEL}`).set('Authorization', admin.auth).send({
    inputPricePer1M: 1000,
    cachedInputPricePer1M: 100,
    cacheWritePricePer1M: 1250,
    cacheWrite1hPricePer1M: 2000,
    outputPricePer1M: 4000,
    reasoningPricePer1M: 8000,
  });
  expect(res.status).toBe(201);
});
afterAll(() => ctx.close());

afterEach(async () => {
  const res = await request(ctx.app).get('/api/admin/reconcile').set('Authorization', admin.auth);
  expect(res.body).toMatchObject({ ok: true, discrepancies: [] });
});

const post = (path: string, auth: string, body: object) => request(ctx.app).post(path).set('Authorization', auth).send(body);

// 10,000 prompt tokens: 3,000 cache reads, 2,000 cache writes, 1,000 1-hour writes, so 4,000 uncached;
// 5,000 completion tokens of which 1,500 reasoning, so 3,500 plain output.
const parts = { cachedInputTokens: 3000, cacheWriteTokens: 2000, cacheWrite1hTokens: 1000, reasoningTokens: 1500 };
// 4000*1000 + 3000*100 + 2000*1250 + 1000*2000 + 3500*4000 + 1500*8000 = 34,800,000 micro = 34.8 credits
const COST = 34.8;

describe('every endpoint follows the one counting convention', () => {
  test('When calculate gets every kind, then the breakdown prices each kind and the total is their exact sum', async () => {
    const res = await post('/api/credits/calculate', userWithRole('user').auth, { modelId: MODEL, inputTokens: 10_000, outputTokens: 5000, ...parts });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      modelId: MODEL,
      priceVersion: 1,
      credits: COST,
      breakdown: { input: 4, cachedInput: 0.3, cacheWrite: 2.5, cacheWrite1h: 2, output: 14, reasoning: 12 },
    });
  });

  test('When check gets every kind, then the required credits are the same cost', async () => {
    const user = userWithRole('user');
    await grantDirect(ctx.db, user.id, 30);
    const res = await post('/api/credits/check', user.auth, { modelId: MODEL, inputTokens: 10_000, outputTokens: 5000, ...parts });
    expect(res.body).toEqual({ sufficient: false, requiredCredits: COST, availableCredits: 30 });
  });

  test('When a session is initialized, finalized and recorded with every kind, then the hold, the capture, the record and the stats carry them', async () => {
    const user = userWithRole('user');
    await grantDirect(ctx.db, user.id, 100);
    const init = await post('/api/streaming-sessions/initialize', user.auth, {
      modelId: MODEL,
      estimatedInputTokens: 10_000,
      estimatedOutputTokens: 5000,
      ...parts,
    });
    expect(init.status).toBe(201);
    expect(init.body.estimatedCredits).toBe(COST);

    const fin = await post('/api/streaming-sessions/finalize', user.auth, {
      sessionId: init.body.sessionId,
      actualInputTokens: 10_000,
      actualOutputTokens: 5000,
      ...parts,
    });
    expect(fin.status).toBe(200);
    expect(fin.body).toMatchObject({ usedCredits: COST, refundedCredits: 0, unpaidCredits: 0 });

    const [session] = await ctx.db.query<Record<string, string>>(
      `SELECT actual_input_tokens::text, actual_output_tokens::text, cached_input_tokens::text, cache_write_tokens::text,
              cache_write_1h_tokens::text, reasoning_tokens::text FROM streaming_sessions WHERE id = $1`,
      [init.body.sessionId],
    );
    expect(session).toEqual({
      actual_input_tokens: '10000',
      actual_output_tokens: '5000',
      cached_input_tokens: '3000',
      cache_write_tokens: '2000',
      cache_write_1h_tokens: '1000',
      reasoning_tokens: '1500',
    });

    const records = await request(ctx.app).get('/api/usage/records').set('Authorization', user.auth);
    expect(records.body.data[0]).toMatchObject({ inputTokens: 10_000, outputTokens: 5000, ...parts, credits: COST });

    const stats = await request(ctx.app).get('/api/usage/stats').set('Authorization', user.auth);
    expect(stats.body.byModel).toEqual([
      expect.objectContaining({ modelId: MODEL, requests: 1, credits: COST, inputTokens: 10_000, outputTokens: 5000, ...parts }),
    ]);
    expect(stats.body.totals).toMatchObject({ inputTokens: 10_000, ...parts });

    const csv = await request(ctx.app).get('/api/usage/records').query({ format: 'csv' }).set('Authorization', user.auth);
    const [header, line] = (csv.text as string).trim().split('\r\n').map((l) => l.split(','));
    const at = (name: string) => line[header.indexOf(name)];
    expect([at('input_tokens'), at('cached_input_tokens'), at('cache_write_tokens'), at('cache_write_1h_tokens'), at('output_tokens'), at('reasoning_tokens')]).toEqual(
      ['10000', '3000', '2000', '1000', '5000', '1500'],
    );
  });

  test('When usage is recorded with every kind, then it is charged the same cost and system stats count each kind', async () => {
    const user = userWithRole('user');
    await grantDirect(ctx.db, user.id, 100);
    const res = await post('/api/usage/record', user.auth, { service: 'chat', operation: 'c', modelId: MODEL, inputTokens: 10_000, outputTokens: 5000, ...parts });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ chargedCredits: COST, usageRecord: { ...parts, inputTokens: 10_000, outputTokens: 5000 } });

    const system = await request(ctx.app).get('/api/usage/system-stats').set('Authorization', admin.auth);
    const row = system.body.byModel.find((m: { modelId: string }) => m.modelId === MODEL);
    expect(row.requests).toBeGreaterThanOrEqual(1);
    expect(row.cacheWrite1hTokens % 1000).toBe(0);
    expect(row.reasoningTokens).toBeGreaterThanOrEqual(1500);
  });

  test('When an abort reports what was streamed with parts, then that is charged at each kind', async () => {
    const user = userWithRole('user');
    await grantDirect(ctx.db, user.id, 100);
    const init = await post('/api/streaming-sessions/initialize', user.auth, { modelId: MODEL, estimatedInputTokens: 1000, estimatedOutputTokens: 1000 });
    const res = await post('/api/streaming-sessions/abort', user.auth, {
      sessionId: init.body.sessionId,
      actualInputTokens: 1000,
      cachedInputTokens: 1000,
      actualOutputTokens: 100,
      reasoningTokens: 100,
    });
    expect(res.status).toBe(200);
    // 1000*100 + 100*8000 = 900,000 micro
    expect(res.body).toMatchObject({ status: 'aborted', usedCredits: 0.9 });
  });
});

describe('parts that exceed their whole are a 400 that names the field and changes nothing', () => {
  const cases: [string, object, string][] = [
    ['/api/credits/check', { modelId: MODEL, inputTokens: 10, outputTokens: 10, cachedInputTokens: 6, cacheWriteTokens: 5 }, 'cacheWriteTokens'],
    ['/api/credits/calculate', { modelId: MODEL, inputTokens: 10, outputTokens: 10, reasoningTokens: 11 }, 'reasoningTokens'],
    ['/api/credits/calculate', { modelId: MODEL, inputTokens: 10, outputTokens: 10, cacheWrite1hTokens: 11 }, 'cacheWrite1hTokens'],
    ['/api/streaming-sessions/initialize', { modelId: MODEL, estimatedInputTokens: 10, estimatedOutputTokens: 10, cachedInputTokens: 11 }, 'cachedInputTokens'],
    ['/api/streaming-sessions/finalize', { sessionId: 'nope', actualInputTokens: 10, actualOutputTokens: 10, reasoningTokens: 11 }, 'reasoningTokens'],
    ['/api/streaming-sessions/abort', { sessionId: 'nope', cacheWriteTokens: 1 }, 'cacheWriteTokens'],
    ['/api/usage/record', { service: 's', operation: 'o', modelId: MODEL, inputTokens: 1, outputTokens: 1, cacheWriteTokens: 2 }, 'cacheWriteTokens'],
    ['/api/usage/record', { service: 's', operation: 'o', credits: 1, reasoningTokens: 2 }, 'credits'],
  ];
  test.each(cases)('When %s gets %j, then 400 naming %s', async (path, body, field) => {
    const user = userWithRole('user');
    await grantDirect(ctx.db, user.id, 10);
    const res = await post(path, user.auth, body);
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('VALIDATION_ERROR');
    expect(res.body.error.details.problems.map((p: { path: string }) => p.path)).toContain(field);
    const [row] = await ctx.db.query<{ n: number }>(
      `SELECT (SELECT count(*) FROM usage_records WHERE user_id = $1) + (SELECT count(*) FROM streaming_sessions WHERE user_id = $1) AS n`,
      [user.id],
    );
    expect(Number(row.n)).toBe(0);
  });
});
