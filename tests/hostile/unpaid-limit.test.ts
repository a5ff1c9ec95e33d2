import request from 'supertest';
import { createTestContext, type TestContext } from '../support/context';
import { count, grantDirect } from '../support/db';
import { loadConfig } from '../../src/config';
import { userWithRole } from '../support/tokens';

/**
 * Issue 12, item 4: debt is bounded. With UNPAID_LIMIT_CREDITS=10, a user whose unpaid credits are strictly
 * above 10 gets 402 UNPAID_LIMIT on initialize and on their own usage records (before INSUFFICIENT_CREDITS);
 * finalize, abort and records by a supervisor are never refused.
 */
let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext({ UNPAID_LIMIT_CREDITS: '10' });
});
afterAll(() => ctx.close());

const supervisor = userWithRole('supervisor');
const record = (auth: string, credits: number, userId?: string) =>
  request(ctx.app).post('/api/usage/record').set('Authorization', auth).send({ service: 'chat', operation: 'completion', credits, ...(userId ? { userId } : {}) });
const post = (path: string, auth: string, body: object) =>
  request(ctx.app).post(`/api/streaming-sessions/${path}`).set('Authorization', auth).send(body);

async function written() {
  return {
    records: await count(ctx.db, 'usage_records'),
    ledger: await count(ctx.db, 'credit_transactions'),
    sessions: await count(ctx.db, 'streaming_sessions'),
    keys: await count(ctx.db, 'idempotency_keys'),
  };
}

test('When a user owes exactly the limit, then they are still served; once above it, initialize and own records get 402 UNPAID_LIMIT and nothing is written', async () => {
  const user = userWithRole('user');
  await grantDirect(ctx.db, user.id, 2);
  const open = await post('initialize', user.auth, { sessionId: 'before-debt', modelId: 'gpt-4o', estimatedCredits: 1 });
  expect(open.status).toBe(201);

  // 1 credit available: 1 charged, 10 unpaid -> exactly at the limit, not above.
  const atLimit = await record(user.auth, 11);
  expect(atLimit.status).toBe(201);
  expect(atLimit.body.unpaidCredits).toBe(10);
  const stillServed = await record(user.auth, 0.5);
  expect(stillServed.status).toBe(201);

  const before = await written();
  const refusedRecord = await request(ctx.app)
    .post('/api/usage/record')
    .set('Authorization', user.auth)
    .set('Idempotency-Key', 'over-limit')
    .send({ service: 'chat', operation: 'completion', credits: 1 });
  const refusedInit = await post('initialize', user.auth, { modelId: 'gpt-4o', estimatedCredits: 1 });

  for (const res of [refusedRecord, refusedInit]) {
    expect(res.status).toBe(402);
    // UNPAID_LIMIT comes before INSUFFICIENT_CREDITS (this user has no credits left either).
    expect(res.body.error.code).toBe('UNPAID_LIMIT');
    expect(res.body.error.details).toEqual({ unpaidCredits: 10.5 });
  }
  // Nothing is written but the refusal itself, kept under the record's Idempotency-Key for its retries.
  expect(await written()).toEqual({ ...before, keys: before.keys + 1 });
  expect(await count(ctx.db, 'idempotency_keys', `key = 'over-limit' AND response_status = 402`)).toBe(1);

  const balance = await request(ctx.app).get('/api/credits/balance').set('Authorization', user.auth);
  expect(balance.status).toBe(200);
  expect(balance.body).toMatchObject({ availableCredits: 0, unpaidCredits: 10.5 });

  // Real usage is never dropped: finalize of the session opened earlier, and a supervisor's record.
  const fin = await post('finalize', user.auth, { sessionId: 'before-debt', actualInputTokens: 8000, actualOutputTokens: 0 });
  expect(fin.status).toBe(200);
  expect(fin.body.unpaidCredits).toBe(1);
  const bySupervisor = await record(supervisor.auth, 3, user.id);
  expect(bySupervisor.status).toBe(201);
  expect(bySupervisor.body.unpaidCredits).toBe(3);
  const after = await request(ctx.app).get('/api/credits/balance').set('Authorization', user.auth);
  expect(after.body.unpaidCredits).toBe(14.5);
});

test('When a user above the limit aborts a session, then it is not refused', async () => {
  const user = userWithRole('user');
  await grantDirect(ctx.db, user.id, 1);
  expect((await post('initialize', user.auth, { sessionId: 's', modelId: 'gpt-4o', estimatedCredits: 1 })).status).toBe(201);
  expect((await record(supervisor.auth, 20, user.id)).status).toBe(201);

  const abort = await post('abort', user.auth, { sessionId: 's', actualInputTokens: 4000, actualOutputTokens: 0 });
  expect(abort.status).toBe(200);
  expect(abort.body.status).toBe('aborted');
});

test('When UNPAID_LIMIT_CREDITS is not a credit amount, then the configuration is refused at boot', () => {
  expect(() => loadConfig({ ...process.env, NODE_ENV: 'test', JWT_SECRET: 'x'.repeat(32), UNPAID_LIMIT_CREDITS: '-1' })).toThrow(/UNPAID_LIMIT_CREDITS/);
  expect(() => loadConfig({ ...process.env, NODE_ENV: 'test', JWT_SECRET: 'x'.repeat(32), UNPAID_LIMIT_CREDITS: '1.0000001' })).toThrow(/UNPAID_LIMIT_CREDITS/);
  expect(loadConfig({ ...process.env, NODE_ENV: 'test', JWT_SECRET: 'x'.repeat(32), UNPAID_LIMIT_CREDITS: '2.5' }).UNPAID_LIMIT_CREDITS).toBe(2_500_000n);
});
