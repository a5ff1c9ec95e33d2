import type { Server } from 'node:http';
import request from 'supertest';
import { createServices } from '../../src/services';
import { createTestContext, type TestContext } from '../support/context';
import { availableOf, count, grantDirect, micro } from '../support/db';
import { userWithRole } from '../support/tokens';
import { addTestModel, ledgerProblems, reconcile, reservedOf, TEST_MODEL } from './support';

let ctx: TestContext;
let server: Server;
beforeAll(async () => {
  // A per-user burst of 1000 requests queues on the pool: give the queue time rather than failing fast.
  ctx = await createTestContext({ DB_ACQUIRE_TIMEOUT_MS: '120000', USER_CACHE_TTL_MS: '60000', PRICE_CACHE_TTL_MS: '60000' });
  await addTestModel(ctx.db);
  // A backlog above the burst size, so the kernel does not drop connections of the burst.
  server = ctx.app.listen(0, '127.0.0.1', 2048);
});
afterEach(async () => {
  expect(await reconcile(server)).toMatchObject({ ok: true, discrepancies: [] });
  expect(await ledgerProblems(ctx.db)).toEqual([]);
});
afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  await ctx.close();
});

const post = (path: string, auth: string, body: object) =>
  request(server).post(`/api/streaming-sessions/${path}`).set('Authorization', auth).send(body);

async function ledgerSum(sessionIds: string[], type: string): Promise<bigint> {
  const [row] = await ctx.db.query<{ total: string }>(
    `SELECT coalesce(sum(amount), 0)::text AS total FROM credit_transactions WHERE session_id = ANY($1) AND type = $2`,
    [sessionIds, type],
  );
  return BigInt(row.total);
}

test('When 1000 initializes of 1 credit race against a balance of 100, then exactly 100 hold and 900 get 402; finalizing half and aborting half adds up', async () => {
  const user = userWithRole('user');
  const lot = await grantDirect(ctx.db, user.id, 100);

  const responses = await Promise.all(
    Array.from({ length: 1000 }, () => post('initialize', user.auth, { modelId: TEST_MODEL, estimatedCredits: 1 })),
  );

  const byStatus: Record<number, number> = {};
  for (const r of responses) byStatus[r.status] = (byStatus[r.status] ?? 0) + 1;
  expect(byStatus).toEqual({ 201: 100, 402: 900 });
  const created = responses.filter((r) => r.status === 201);
  const refused = responses.filter((r) => r.status === 402);
  expect(refused.every((r) => r.body.error.code === 'INSUFFICIENT_CREDITS')).toBe(true);
  expect(await count(ctx.db, 'streaming_sessions', `user_id = $1 AND status = 'active'`, [user.id])).toBe(100);
  expect(await reservedOf(ctx.db, user.id)).toBe(micro(100));
  expect(await availableOf(ctx.db, user.id)).toBe(0n);
  const balance = await request(server).get('/api/credits/balance').set('Authorization', user.auth);
  expect(balance.body).toMatchObject({ availableCredits: 0, reservedCredits: 100 });

  // Finalize the first 50 at 0.25 credits each (250 input tokens), abort the other 50, all at once.
  const ids = created.map((r) => r.body.sessionId as string);
  const [toFinalize, toAbort] = [ids.slice(0, 50), ids.slice(50)];
  const settled = await Promise.all([
    ...toFinalize.map((sessionId) => post('finalize', user.auth, { sessionId, actualInputTokens: 250, actualOutputTokens: 0 })),
    ...toAbort.map((sessionId) => post('abort', user.auth, { sessionId })),
  ]);

  expect(settled.map((r) => r.status)).toEqual(settled.map(() => 200));
  expect(await count(ctx.db, 'streaming_sessions', `user_id = $1 AND status = 'active'`, [user.id])).toBe(0);
  expect(await reservedOf(ctx.db, user.id)).toBe(0n);
  expect(await availableOf(ctx.db, user.id)).toBe(micro(100 - 50 * 0.25));
  const after = await request(server).get('/api/credits/balance').set('Authorization', user.auth);
  expect(after.body).toMatchObject({ availableCredits: 87.5, reservedCredits: 0 });
  expect(await ledgerSum(ids, 'hold')).toBe(micro(100));
  expect(await ledgerSum(ids, 'capture')).toBe(micro(12.5));
  expect(await ledgerSum(ids, 'release')).toBe(micro(87.5));
  expect(await count(ctx.db, 'usage_records', `user_id = $1`, [user.id])).toBe(100);
  const [lotRow] = await ctx.db.query<{ remaining: string; total: string }>(
    `SELECT remaining_credits::text AS remaining, total_credits::text AS total FROM credit_allocations WHERE id = $1`,
    [lot],
  );
  expect(BigInt(lotRow.total) - BigInt(lotRow.remaining)).toBe(micro(12.5));
});

describe('racing settles of one session', () => {
  async function openSession() {
    const user = userWithRole('user');
    await grantDirect(ctx.db, user.id, 10);
    const res = await post('initialize', user.auth, { modelId: TEST_MODEL, estimatedCredits: 4 });
    return { user, sessionId: res.body.sessionId as string };
  }

  test('When two finalizes of one session race, then both see the same single result and the hold is captured once', async () => {
    for (let round = 0; round < 10; round++) {
      const { user, sessionId } = await openSession();

      const [a, b] = await Promise.all([
        post('finalize', user.auth, { sessionId, actualInputTokens: 1000, actualOutputTokens: 0 }),
        post('finalize', user.auth, { sessionId, actualInputTokens: 3000, actualOutputTokens: 0 }),
      ]);

      expect([a.status, b.status]).toEqual([200, 200]);
      expect(a.body).toEqual(b.body);
      expect([1, 3]).toContain(a.body.usedCredits);
      expect(await count(ctx.db, 'credit_transactions', `session_id = $1 AND type = 'capture'`, [sessionId])).toBe(1);
      expect(await count(ctx.db, 'credit_transactions', `session_id = $1 AND type = 'release'`, [sessionId])).toBe(1);
      expect(await count(ctx.db, 'usage_records', `session_id = $1`, [sessionId])).toBe(1);
      expect(await availableOf(ctx.db, user.id)).toBe(micro(10 - a.body.usedCredits));
    }
  });

  test('When a finalize and an abort of one session race, then exactly one wins and the other gets 409', async () => {
    for (let round = 0; round < 10; round++) {
      const { user, sessionId } = await openSession();

      const [fin, abort] = await Promise.all([
        post('finalize', user.auth, { sessionId, actualInputTokens: 2000, actualOutputTokens: 0 }),
        post('abort', user.auth, { sessionId }),
      ]);

      const statuses = [fin.status, abort.status].sort();
      expect(statuses).toEqual([200, 409]);
      const loser = fin.status === 409 ? fin : abort;
      expect(loser.body.error.code).toBe('SESSION_NOT_ACTIVE');
      const finalizeWon = fin.status === 200;
      expect(await count(ctx.db, 'streaming_sessions', `id = $1 AND status = $2`, [sessionId, finalizeWon ? 'completed' : 'aborted'])).toBe(1);
      expect(await count(ctx.db, 'credit_transactions', `session_id = $1 AND type = 'capture'`, [sessionId])).toBe(finalizeWon ? 1 : 0);
      expect(await count(ctx.db, 'usage_records', `session_id = $1`, [sessionId])).toBe(1);
      expect(await availableOf(ctx.db, user.id)).toBe(micro(finalizeWon ? 8 : 10));
    }
  });
});

test('When many initializes with one client sessionId race, then one session is held once and every response is that session', async () => {
  const user = userWithRole('user');
  await grantDirect(ctx.db, user.id, 10);
  const body = { sessionId: `race-${user.id}`, modelId: TEST_MODEL, estimatedCredits: 2 };

  const responses = await Promise.all(Array.from({ length: 20 }, () => post('initialize', user.auth, body)));

  expect(responses.filter((r) => r.status === 201)).toHaveLength(1);
  expect(responses.filter((r) => r.status === 200)).toHaveLength(19);
  expect(new Set(responses.map((r) => JSON.stringify(r.body))).size).toBe(1);
  expect(await availableOf(ctx.db, user.id)).toBe(micro(8));
  expect(await count(ctx.db, 'credit_transactions', `session_id = $1 AND type = 'hold'`, [body.sessionId])).toBe(1);
});

describe('round trips', () => {
  test('When the user and price caches are warm, then initialize, finalize and abort are one database statement each', async () => {
    const user = userWithRole('user');
    await grantDirect(ctx.db, user.id, 10);
    const warm = await post('initialize', user.auth, { modelId: TEST_MODEL, estimatedCredits: 1 });
    await post('finalize', user.auth, { sessionId: warm.body.sessionId, actualInputTokens: 1, actualOutputTokens: 1 });
    // Hot statements go through db.prepared (named prepared statements), the rest through db.query.
    const spy = jest.spyOn(ctx.db, 'query');
    const preparedSpy = jest.spyOn(ctx.db, 'prepared');
    try {
      const statementsOf = async (call: () => Promise<request.Response>, status: number) => {
        spy.mockClear();
        preparedSpy.mockClear();
        const res = await call();
        expect(res.status).toBe(status);
        return spy.mock.calls.length + preparedSpy.mock.calls.length;
      };
      const a = await post('initialize', user.auth, { modelId: TEST_MODEL, estimatedCredits: 1 });
      const b = await post('initialize', user.auth, { modelId: TEST_MODEL, estimatedCredits: 1 });

      expect(await statementsOf(() => post('initialize', user.auth, { modelId: TEST_MODEL, estimatedInputTokens: 10, estimatedOutputTokens: 10 }), 201)).toBe(1);
      expect(await statementsOf(() => post('finalize', user.auth, { sessionId: a.body.sessionId, actualInputTokens: 10, actualOutputTokens: 10 }), 200)).toBe(1);
      expect(await statementsOf(() => post('abort', user.auth, { sessionId: b.body.sessionId, actualOutputTokens: 5 }), 200)).toBe(1);
    } finally {
      spy.mockRestore();
      preparedSpy.mockRestore();
    }
  });

  test('When another instance finalizes a session it did not open, then it reads the session price once, then settles', async () => {
    const user = userWithRole('user');
    await grantDirect(ctx.db, user.id, 10);
    const opened = await post('initialize', user.auth, { modelId: TEST_MODEL, estimatedCredits: 2 });
    const other = createServices(ctx.db, ctx.config).sessions;
    // Hot statements go through db.prepared (named prepared statements), the rest through db.query.
    const spy = jest.spyOn(ctx.db, 'query');
    const preparedSpy = jest.spyOn(ctx.db, 'prepared');
    const statementsInOrder = () =>
      [
        ...spy.mock.calls.map(([sql], i) => ({ at: spy.mock.invocationCallOrder[i], sql })),
        ...preparedSpy.mock.calls.map(([, sql], i) => ({ at: preparedSpy.mock.invocationCallOrder[i], sql })),
      ]
        .sort((x, y) => x.at - y.at)
        .map(({ sql }) => String(sql).trim().split(/\s+/).slice(0, 4).join(' '));
    try {
      const res = await other.finalizeSession({ userId: user.id, role: 'user' }, { sessionId: opened.body.sessionId, actualInputTokens: 1000, actualOutputTokens: 0 });
      expect(res.body.usedCredits).toBe(1);
      // price lookup of the session + the version's price (cold in this instance) + the settle call
      expect(statementsInOrder()).toEqual([
        'SELECT model_id, price_version FROM',
        'SELECT * FROM model_prices',
        'SELECT * FROM acct_session_settle($1::text,',
      ]);
    } finally {
      spy.mockRestore();
      preparedSpy.mockRestore();
    }
  });
});
