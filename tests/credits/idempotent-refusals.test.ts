import request from 'supertest';
import { AppError } from '../../src/lib/errors';
import { createTestContext, type TestContext } from '../support/context';
import { availableOf, count, grantDirect, micro } from '../support/db';
import { userWithRole } from '../support/tokens';

/**
 * API.md: "A retry with the same key and same body replays the first response (same status and body)".
 * A refusal is a response: a retry after the state changed (credits granted, a session ended) gets the
 * first answer again, and the work it refused stays undone.
 */
let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext();
});
afterAll(() => ctx.close());

const post = (path: string, auth: string, key: string | null, body: object) => {
  const call = request(ctx.app).post(path).set('Authorization', auth);
  return (key === null ? call : call.set('Idempotency-Key', key)).send(body);
};
const storedStatus = async (callerId: string, key: string) =>
  (await ctx.db.query<{ response_status: number }>(`SELECT response_status FROM idempotency_keys WHERE caller_id = $1 AND key = $2`, [callerId, key]))[0]
    ?.response_status;

describe('refusals are stored under the Idempotency-Key', () => {
  test('When initialize is refused for credits and retried with the key after a grant, then the 402 is replayed and nothing is held', async () => {
    const user = userWithRole('user');
    const body = { modelId: 'gpt-4o', estimatedCredits: 5 };
    const first = await post('/api/streaming-sessions/initialize', user.auth, 'init-1', body);
    expect(first.status).toBe(402);
    expect(first.body.error.code).toBe('INSUFFICIENT_CREDITS');
    expect(first.headers['idempotent-replayed']).toBeUndefined();
    expect(await storedStatus(user.id, 'init-1')).toBe(402);

    await grantDirect(ctx.db, user.id, 100);
    const retry = await post('/api/streaming-sessions/initialize', user.auth, 'init-1', body);
    expect(retry.status).toBe(402);
    expect(retry.headers['idempotent-replayed']).toBe('true');
    const { requestId: _first, ...firstError } = first.body.error;
    const { requestId: _retry, ...retryError } = retry.body.error;
    expect(retryError).toEqual(firstError);
    expect(await count(ctx.db, 'streaming_sessions', 'user_id = $1', [user.id])).toBe(0);
    expect(await availableOf(ctx.db, user.id)).toBe(micro(100));

    // Same key, other body: still 422; a new key runs the request.
    expect((await post('/api/streaming-sessions/initialize', user.auth, 'init-1', { ...body, estimatedCredits: 6 })).status).toBe(422);
    const fresh = await post('/api/streaming-sessions/initialize', user.auth, 'init-2', body);
    expect(fresh.status).toBe(201);
    expect(await availableOf(ctx.db, user.id)).toBe(micro(95));
  });

  test('When a negative adjust is refused and retried after a grant, then the 402 is replayed and nothing is taken', async () => {
    const supervisor = userWithRole('supervisor');
    const target = userWithRole('user');
    await grantDirect(ctx.db, target.id, 10);
    const body = { userId: target.id, credits: -50, reason: 'chargeback' };
    expect((await post('/api/credits/adjust', supervisor.auth, 'adj-1', body)).status).toBe(402);
    await grantDirect(ctx.db, target.id, 100);
    const retry = await post('/api/credits/adjust', supervisor.auth, 'adj-1', body);
    expect([retry.status, retry.body.error.code, retry.headers['idempotent-replayed']]).toEqual([402, 'INSUFFICIENT_CREDITS', 'true']);
    expect(await availableOf(ctx.db, target.id)).toBe(micro(110));
    expect(await count(ctx.db, 'credit_transactions', `user_id = $1 AND type = 'adjust'`, [target.id])).toBe(0);
  });

  test('When finalize of an aborted session is refused with a key, then the 409 is stored and replayed', async () => {
    const user = userWithRole('user');
    await grantDirect(ctx.db, user.id, 100);
    expect((await post('/api/streaming-sessions/initialize', user.auth, null, { sessionId: 'ended', modelId: 'gpt-4o', estimatedCredits: 5 })).status).toBe(201);
    expect((await post('/api/streaming-sessions/abort', user.auth, null, { sessionId: 'ended' })).status).toBe(200);
    const body = { sessionId: 'ended', actualInputTokens: 10, actualOutputTokens: 10 };
    const first = await post('/api/streaming-sessions/finalize', user.auth, 'fin-1', body);
    const retry = await post('/api/streaming-sessions/finalize', user.auth, 'fin-1', body);
    expect([first.status, first.body.error.code, retry.status, retry.body.error.code]).toEqual([409, 'SESSION_NOT_ACTIVE', 409, 'SESSION_NOT_ACTIVE']);
    expect(retry.headers['idempotent-replayed']).toBe('true');
    expect(await storedStatus(user.id, 'fin-1')).toBe(409);
    expect(await availableOf(ctx.db, user.id)).toBe(micro(100));
  });

  test('When 20 requests with one key race and the first is refused, then all 20 get the 402, 19 of them as replays, and one key row holds it', async () => {
    const user = userWithRole('user');
    const body = { modelId: 'gpt-4o', estimatedCredits: 5 };
    const responses = await Promise.all(Array.from({ length: 20 }, () => post('/api/streaming-sessions/initialize', user.auth, 'race', body)));
    expect(responses.map((r) => r.status)).toEqual(Array(20).fill(402));
    expect(responses.filter((r) => r.headers['idempotent-replayed'] === 'true')).toHaveLength(19);
    expect(await count(ctx.db, 'idempotency_keys', 'caller_id = $1', [user.id])).toBe(1);
    expect(await storedStatus(user.id, 'race')).toBe(402);
  });

  test('When a request without a key is refused, then a retry after a grant runs again (only keys remember answers)', async () => {
    const user = userWithRole('user');
    const body = { sessionId: 'no-key', modelId: 'gpt-4o', estimatedCredits: 5 };
    expect((await post('/api/streaming-sessions/initialize', user.auth, null, body)).status).toBe(402);
    await grantDirect(ctx.db, user.id, 10);
    expect((await post('/api/streaming-sessions/initialize', user.auth, null, body)).status).toBe(201);
  });

  test('When a refusal is stored, then its row reads as expired to a version from before refusals were kept, which runs the request instead of replaying it as a 200', async () => {
    const user = userWithRole('user');
    const body = { modelId: 'gpt-4o', estimatedCredits: 5 };
    expect((await post('/api/streaming-sessions/initialize', user.auth, 'old-reader', body)).status).toBe(402);
    const [row] = await ctx.db.query<{ expired: boolean }>(`SELECT expires_at <= now() AS expired FROM idempotency_keys WHERE caller_id = $1 AND key = 'old-reader'`, [user.id]);
    expect(row.expired).toBe(true);
    // The claim statement of the version before (what an instance not yet upgraded, or a rollback, sends):
    // it takes an expired key over as free.
    const [taken] = await ctx.db.query(
      `INSERT INTO idempotency_keys AS k (caller_id, key, request_hash, response_status, response_body, expires_at)
       VALUES ($1, 'old-reader', 'h', 0, 'null'::json, now() + interval '24 hours')
       ON CONFLICT (caller_id, key) DO UPDATE
          SET request_hash = EXCLUDED.request_hash, response_status = 0, response_body = 'null'::json,
              created_at = now(), expires_at = EXCLUDED.expires_at
        WHERE k.expires_at <= now()
       RETURNING 1`,
      [user.id],
    );
    expect(taken).toBeDefined();
  });

  test('When the sweeper runs, then a refusal stays while young and goes once older than the TTL, after which the key runs again', async () => {
    const user = userWithRole('user');
    const body = { modelId: 'gpt-4o', estimatedCredits: 5 };
    expect((await post('/api/streaming-sessions/initialize', user.auth, 'swept', body)).status).toBe(402);
    await ctx.services.idempotency.deleteExpired();
    expect(await storedStatus(user.id, 'swept')).toBe(402);
    await ctx.db.query(`UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE caller_id = $1`, [user.id]);
    await ctx.services.idempotency.deleteExpired();
    expect(await storedStatus(user.id, 'swept')).toBeUndefined();
    await grantDirect(ctx.db, user.id, 10);
    expect((await post('/api/streaming-sessions/initialize', user.auth, 'swept', body)).status).toBe(201);
  });

  test('When the work answers CONFLICT ("finish that first"), then nothing is stored and the same key may run again', async () => {
    const context = { callerId: 'conflict-caller', key: 'k', requestHash: 'h' };
    const refuse = (code: 'CONFLICT' | 'NOT_FOUND') => ctx.services.idempotency.run(context, async () => Promise.reject(new AppError(code, code)));
    await expect(refuse('CONFLICT')).rejects.toMatchObject({ code: 'CONFLICT', replayed: false });
    expect(await storedStatus('conflict-caller', 'k')).toBeUndefined();
    await expect(refuse('NOT_FOUND')).rejects.toMatchObject({ code: 'NOT_FOUND', replayed: false });
    await expect(refuse('CONFLICT')).rejects.toMatchObject({ code: 'NOT_FOUND', replayed: true });
  });
});
