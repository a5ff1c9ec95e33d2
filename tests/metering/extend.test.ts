import type { Server } from 'node:http';
import request from 'supertest';
import { AccountingClient, type Schemas } from '../../client';
import { createTestContext, type TestContext } from '../support/context';
import { grantDirect } from '../support/db';
import { tokenFor, userWithRole } from '../support/tokens';

let ctx: TestContext;
const admin = userWithRole('admin');
// Per token: input 1000, output 2000 micro-credits.
const MODEL = 'extend-model';

beforeAll(async () => {
  ctx = await createTestContext();
  await request(ctx.app).put(`/api/models/${MODEL}`).set('Authorization', admin.auth).send({ inputPricePer1M: 1000, outputPricePer1M: 2000 });
});
afterAll(() => ctx.close());
afterEach(async () => {
  const res = await request(ctx.app).get('/api/admin/reconcile').set('Authorization', admin.auth);
  expect(res.body).toMatchObject({ ok: true, discrepancies: [] });
});

const post = (path: string, auth: string, body: object) => request(ctx.app).post(path).set('Authorization', auth).send(body);
const open = (auth: string, body: object = {}) =>
  post('/api/streaming-sessions/initialize', auth, { modelId: MODEL, estimatedInputTokens: 1000, estimatedOutputTokens: 1000, ...body });
const holdOf = async (sessionId: string) => {
  const [row] = await ctx.db.query<{ allocated: string; legs: string; expires_at: Date }>(
    `SELECT s.allocated_credits::text AS allocated, (SELECT sum(held_credits) FROM session_holds WHERE session_id = s.id)::text AS legs, s.expires_at
       FROM streaming_sessions s WHERE s.id = $1`,
    [sessionId],
  );
  return row;
};

describe('POST /api/streaming-sessions/extend', () => {
  test('When a session is extended by output tokens and a TTL, then the hold grows by their cost at the session price and expiresAt moves', async () => {
    const user = userWithRole('user');
    await grantDirect(ctx.db, user.id, 10);
    const init = await open(user.auth, { ttlSeconds: 60 });
    expect(init.body.allocatedCredits).toBe(3);

    const res = await post('/api/streaming-sessions/extend', user.auth, { sessionId: init.body.sessionId, ttlSeconds: 600, additionalOutputTokens: 1500 });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ sessionId: init.body.sessionId, status: 'active', allocatedCredits: 6, estimatedCredits: 3, priceVersion: 1 });
    expect(Date.parse(res.body.expiresAt)).toBeGreaterThan(Date.parse(init.body.expiresAt));
    expect(await holdOf(init.body.sessionId)).toMatchObject({ allocated: '6000000', legs: '6000000' });

    const credits = await post('/api/streaming-sessions/extend', user.auth, { sessionId: init.body.sessionId, additionalCredits: 1.5 });
    expect(credits.body.allocatedCredits).toBe(7.5);
    const balance = await request(ctx.app).get('/api/credits/balance').set('Authorization', user.auth);
    expect(balance.body).toMatchObject({ availableCredits: 2.5, reservedCredits: 7.5 });

    // The larger hold is captured and released like the first one.
    const fin = await post('/api/streaming-sessions/finalize', user.auth, { sessionId: init.body.sessionId, actualInputTokens: 1000, actualOutputTokens: 2000 });
    expect(fin.body).toMatchObject({ allocatedCredits: 7.5, usedCredits: 5, refundedCredits: 2.5 });
  });

  test('When the extra hold is not covered, then 402 and the existing hold and TTL are untouched', async () => {
    const user = userWithRole('user');
    await grantDirect(ctx.db, user.id, 4);
    const init = await open(user.auth);
    const before = await holdOf(init.body.sessionId);
    const res = await post('/api/streaming-sessions/extend', user.auth, { sessionId: init.body.sessionId, ttlSeconds: 900, additionalCredits: 2 });
    expect(res.status).toBe(402);
    expect(res.body.error).toMatchObject({ code: 'INSUFFICIENT_CREDITS', details: { requiredCredits: 2, availableCredits: 1 } });
    expect(await holdOf(init.body.sessionId)).toEqual(before);
  });

  test('When the session has ended, then 409 SESSION_NOT_ACTIVE; unknown or another user\u2019s session, 404', async () => {
    const user = userWithRole('user');
    await grantDirect(ctx.db, user.id, 10);
    const init = await open(user.auth);
    await post('/api/streaming-sessions/abort', user.auth, { sessionId: init.body.sessionId });
    const ended = await post('/api/streaming-sessions/extend', user.auth, { sessionId: init.body.sessionId, ttlSeconds: 60 });
    expect(ended.status).toBe(409);
    expect(ended.body.error.code).toBe('SESSION_NOT_ACTIVE');

    const live = await open(user.auth);
    const other = await post('/api/streaming-sessions/extend', userWithRole('user').auth, { sessionId: live.body.sessionId, additionalCredits: 1 });
    expect(other.status).toBe(404);
    const unknown = await post('/api/streaming-sessions/extend', user.auth, { sessionId: 'no-such-session', additionalOutputTokens: 5 });
    expect(unknown.status).toBe(404);
    expect((await holdOf(live.body.sessionId)).allocated).toBe('3000000');
  });

  test.each([
    [{ sessionId: 'x' }, 'ttlSeconds'],
    [{ sessionId: 'x', additionalOutputTokens: 5, additionalCredits: 1 }, 'additionalCredits'],
    [{ sessionId: 'x', ttlSeconds: 0 }, 'ttlSeconds'],
    [{ sessionId: 'x', additionalCredits: -1 }, 'additionalCredits'],
  ])('When the body is %j, then 400 naming %s', async (body, field) => {
    const res = await post('/api/streaming-sessions/extend', userWithRole('user').auth, body);
    expect(res.status).toBe(400);
    expect(res.body.error.details.problems.map((p: { path: string }) => p.path)).toContain(field);
  });

  test('When 20 extends of one session race with a balance for 10, then exactly 10 succeed and the hold is exact', async () => {
    const user = userWithRole('user');
    await grantDirect(ctx.db, user.id, 13);
    const init = await open(user.auth);
    const results = await Promise.all(
      Array.from({ length: 20 }, () => post('/api/streaming-sessions/extend', user.auth, { sessionId: init.body.sessionId, additionalCredits: 1 })),
    );
    expect(results.filter((r) => r.status === 200)).toHaveLength(10);
    expect(results.filter((r) => r.status === 402)).toHaveLength(10);
    expect(await holdOf(init.body.sessionId)).toMatchObject({ allocated: '13000000', legs: '13000000' });
  });
});

describe('typed client heartbeat', () => {
  let server: Server;
  let baseUrl: string;
  beforeAll(async () => {
    server = ctx.app.listen(0);
    await new Promise((resolve) => server.once('listening', resolve));
    baseUrl = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  test('When a stream runs with a heartbeat, then the session is extended while it runs and finalized after it stops', async () => {
    const user = userWithRole('user');
    await grantDirect(ctx.db, user.id, 100);
    const client = new AccountingClient({ baseUrl, token: () => tokenFor({ sub: user.id }) });
    const beats: Schemas['StreamingSession'][] = [];
    let twoBeats!: () => void;
    const gotTwo = new Promise<void>((resolve) => (twoBeats = resolve));

    const { result } = await client.withStreamingSession(
      { modelId: MODEL, estimatedInputTokens: 1000, estimatedOutputTokens: 1000, ttlSeconds: 30 },
      async () => {
        await gotTwo; // the "stream" lasts until two heartbeats have landed
        return { actualInputTokens: 1000, actualOutputTokens: 3000 };
      },
      {
        heartbeat: {
          intervalMs: 10,
          ttlSeconds: 120,
          additionalOutputTokens: 1000,
          onBeat: (s) => {
            beats.push(s);
            if (beats.length === 2) twoBeats();
          },
        },
      },
    );
    expect(beats.length).toBeGreaterThanOrEqual(2);
    expect(beats[1].allocatedCredits).toBeGreaterThan(beats[0].allocatedCredits);
    // 3 credits held at first, +2 per beat; the real cost is 7.
    expect(result.usedCredits).toBe(7);
    expect(result.allocatedCredits).toBe(3 + 2 * beats.length);
    expect(result.unpaidCredits).toBe(0);
  });

  test('When the balance runs out, then the heartbeat stops by itself', async () => {
    const user = userWithRole('user');
    await grantDirect(ctx.db, user.id, 4);
    const client = new AccountingClient({ baseUrl, token: () => tokenFor({ sub: user.id }) });
    const session = await client.initialize({ modelId: MODEL, estimatedInputTokens: 1000, estimatedOutputTokens: 1000 });
    const errors: unknown[] = [];
    let stoppedByService!: () => void;
    const failed = new Promise<void>((resolve) => (stoppedByService = resolve));
    const heartbeat = client.heartbeat(session.sessionId, {
      intervalMs: 5,
      additionalCredits: 1,
      onError: (error) => {
        errors.push(error);
        stoppedByService();
      },
    });
    await failed;
    await heartbeat.stop();
    expect(errors).toHaveLength(1);
    expect((await holdOf(session.sessionId)).allocated).toBe('4000000');
    await client.abort({ sessionId: session.sessionId });
  });
});
