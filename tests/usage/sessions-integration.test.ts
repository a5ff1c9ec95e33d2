import request from 'supertest';
import { createTestContext, type TestContext } from '../support/context';
import { grantDirect } from '../support/db';
import { userWithRole } from '../support/tokens';
import { addTestModel, makeOverdue, reconcile, TEST_MODEL } from '../sessions/support';
import { NO_MISMATCHES, rollupMismatches } from './helpers';

// Streaming sessions write their usage through acct_record_usage and correct it on a late finalize by
// updating usage_daily: the statistics must follow both without the sessions code knowing about them.
let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext();
  await addTestModel(ctx.db);
});
afterAll(() => ctx.close());

const admin = userWithRole('admin');
const post = (path: string, auth: string, body: object) =>
  request(ctx.app).post(`/api/streaming-sessions/${path}`).set('Authorization', auth).send(body);
const systemStats = () => request(ctx.app).get('/api/usage/system-stats').set('Authorization', admin.auth);

test('When sessions are finalized, aborted, expired and finalized late, then usage, credits and session counts add up', async () => {
  const user = userWithRole('user');
  await grantDirect(ctx.db, user.id, 100);
  const open = async () => {
    const res = await post('initialize', user.auth, { modelId: TEST_MODEL, estimatedInputTokens: 1000, estimatedOutputTokens: 1000 });
    expect(res.status).toBe(201);
    return res.body.sessionId as string; // holds 3 credits
  };
  const [completed, aborted, expired, active] = [await open(), await open(), await open(), await open()];

  const during = await systemStats();
  expect(during.body.sessions).toEqual({ active: 4, completed: 0, aborted: 0, expired: 0 });
  expect(during.body.credits).toMatchObject({ allocated: 100, available: 88, reserved: 12 });

  expect((await post('finalize', user.auth, { sessionId: completed, actualInputTokens: 1000, actualOutputTokens: 500 })).status).toBe(200); // 2
  expect((await post('abort', user.auth, { sessionId: aborted, actualInputTokens: 500, actualOutputTokens: 0 })).status).toBe(200); // 0.5
  await makeOverdue(ctx.db, 'id = $1', [expired]);
  expect(await ctx.services.sessions.expireOverdue(10)).toBe(1);
  // A late finalize corrects the one usage record of the expired session (and usage_daily by the delta).
  expect((await post('finalize', user.auth, { sessionId: expired, actualInputTokens: 2000, actualOutputTokens: 2000 })).status).toBe(200); // 6

  const after = await systemStats();
  const truth = await ctx.db.query<{ status: string; n: number }>(`SELECT status, count(*)::int AS n FROM streaming_sessions GROUP BY status`);
  expect(after.body.sessions).toEqual({ active: 0, completed: 0, aborted: 0, expired: 0, ...Object.fromEntries(truth.map((t) => [t.status, t.n])) });
  expect(after.body.sessions.active).toBe(1);
  expect(after.body.credits).toMatchObject({ allocated: 100, reserved: 3, consumed: 8.5, unpaid: 0, available: 88.5 });
  expect(after.body.totals).toMatchObject({ requests: 3, credits: 8.5, activeUsers: 1 });

  const stats = await request(ctx.app).get('/api/usage/stats').set('Authorization', user.auth);
  expect(stats.body.byService).toEqual([expect.objectContaining({ service: 'streaming', operation: 'session', requests: 3, credits: 8.5 })]);
  expect(stats.body.byModel).toEqual([expect.objectContaining({ modelId: TEST_MODEL, requests: 3, credits: 8.5, inputTokens: 3500, outputTokens: 2500 })]);
  expect(await rollupMismatches(ctx.db)).toEqual(NO_MISMATCHES);

  await post('abort', user.auth, { sessionId: active });
  expect((await reconcile(ctx.app)).discrepancies).toEqual([]);
});

test('When usage is recorded directly, then reconcile still finds the books balanced', async () => {
  const user = userWithRole('user');
  await grantDirect(ctx.db, user.id, 2);
  for (const credits of [0.5, 1, 3]) {
    const res = await request(ctx.app).post('/api/usage/record').set('Authorization', user.auth).send({ service: 'search', operation: 'q', credits });
    expect(res.status).toBe(201);
  }
  expect(await reconcile(ctx.app)).toMatchObject({ ok: true, discrepancies: [] });
});
