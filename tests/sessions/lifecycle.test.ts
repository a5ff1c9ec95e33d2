import crypto from 'node:crypto';
import request from 'supertest';
import { createTestContext, type TestContext } from '../support/context';
import { availableOf, count, grantDirect, micro } from '../support/db';
import { userWithRole } from '../support/tokens';
import { addTestModel, ledgerOf, ledgerProblems, reconcile, remainingOf, reservedOf, TEST_MODEL } from './support';

let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext();
  await addTestModel(ctx.db);
});
afterEach(async () => {
  expect(await reconcile(ctx.app)).toMatchObject({ ok: true, discrepancies: [] });
  expect(await ledgerProblems(ctx.db)).toEqual([]);
});
afterAll(() => ctx.close());

const post = (path: string, auth: string, body: object) =>
  request(ctx.app).post(`/api/streaming-sessions/${path}`).set('Authorization', auth).send(body);

/** A user with `credits` in one lot that never expires. */
async function funded(credits: number, role: 'user' | 'admin' = 'user') {
  const user = userWithRole(role);
  const lot = await grantDirect(ctx.db, user.id, credits);
  return { ...user, lot };
}

describe('initialize', () => {
  test('When a user with enough credits initializes with token estimates, then 201, the estimate is held from the lot and the session is active', async () => {
    const user = await funded(10);

    // 1000 input (1 credit) + 500 output (1 credit) at the test model's price.
    const res = await post('initialize', user.auth, { modelId: TEST_MODEL, estimatedInputTokens: 1000, estimatedOutputTokens: 500 });

    expect(res.status).toBe(201);
    expect(res.body).toEqual({
      sessionId: expect.stringMatching(/^[0-9a-f-]{36}$/),
      modelId: TEST_MODEL,
      status: 'active',
      estimatedCredits: 2,
      allocatedCredits: 2,
      priceVersion: 1,
      expiresAt: expect.any(String),
    });
    const ttl = (Date.parse(res.body.expiresAt) - Date.now()) / 1000;
    expect(ttl).toBeGreaterThan(ctx.config.SESSION_TTL_SECONDS - 60);
    expect(ttl).toBeLessThanOrEqual(ctx.config.SESSION_TTL_SECONDS + 1);
    expect(await availableOf(ctx.db, user.id)).toBe(micro(8));
    expect(await reservedOf(ctx.db, user.id)).toBe(micro(2));
    expect(await ledgerOf(ctx.db, res.body.sessionId)).toEqual([['hold', micro(2), user.lot]]);
  });

  test('When the estimate is given in credits, then exactly that is held', async () => {
    const user = await funded(10);
    const res = await post('initialize', user.auth, { modelId: TEST_MODEL, estimatedCredits: '2.5', ttlSeconds: 60 });
    expect(res.status).toBe(201);
    expect(res.body.allocatedCredits).toBe(2.5);
    expect(await availableOf(ctx.db, user.id)).toBe(micro(7.5));
  });

  test('When available credits do not cover the estimate, then 402 with required and available credits, and nothing is held', async () => {
    const user = await funded(1);
    const sessionId = crypto.randomUUID();

    const res = await post('initialize', user.auth, { sessionId, modelId: TEST_MODEL, estimatedCredits: 1.5 });

    expect(res.status).toBe(402);
    expect(res.body.error.code).toBe('INSUFFICIENT_CREDITS');
    expect(res.body.error.details).toEqual({ requiredCredits: 1.5, availableCredits: 1 });
    expect(await availableOf(ctx.db, user.id)).toBe(micro(1));
    expect(await count(ctx.db, 'streaming_sessions', 'id = $1', [sessionId])).toBe(0);
    expect(await count(ctx.db, 'credit_transactions', `user_id = $1 AND type <> 'grant'`, [user.id])).toBe(0);
  });

  test('When the same sessionId is sent again with the same body, then 200 with the same session and nothing more is held', async () => {
    const user = await funded(10);
    const body = { sessionId: crypto.randomUUID(), modelId: TEST_MODEL, estimatedCredits: 3 };

    const first = await post('initialize', user.auth, body);
    const again = await post('initialize', user.auth, { ...body, estimatedCredits: '3.000000' });

    expect(first.status).toBe(201);
    expect(again.status).toBe(200);
    expect(again.body).toEqual(first.body);
    expect(await availableOf(ctx.db, user.id)).toBe(micro(7));
    expect(await count(ctx.db, 'credit_transactions', `session_id = $1`, [body.sessionId])).toBe(1);
  });

  test('When the same sessionId is sent with a different body, then 422 IDEMPOTENCY_KEY_REUSED and nothing changes', async () => {
    const user = await funded(10);
    const body = { sessionId: crypto.randomUUID(), modelId: TEST_MODEL, estimatedCredits: 3 };
    await post('initialize', user.auth, body);

    const res = await post('initialize', user.auth, { ...body, estimatedCredits: 4 });

    expect(res.status).toBe(422);
    expect(res.body.error.code).toBe('IDEMPOTENCY_KEY_REUSED');
    expect(await availableOf(ctx.db, user.id)).toBe(micro(7));
  });

  test("When a user sends another user's sessionId, then it opens the user's own session: ids are scoped per user", async () => {
    const owner = await funded(10);
    const other = await funded(10);
    const body = { sessionId: crypto.randomUUID(), modelId: TEST_MODEL, estimatedCredits: 3 };
    await post('initialize', owner.auth, body);

    const res = await post('initialize', other.auth, { ...body, estimatedCredits: 2 });

    expect(res.status).toBe(201);
    expect(await availableOf(ctx.db, other.id)).toBe(micro(8));
    expect(await availableOf(ctx.db, owner.id)).toBe(micro(7));
  });

  test('When the same request carries an Idempotency-Key twice, then the second replays the first with Idempotent-Replayed', async () => {
    const user = await funded(10);
    const send = () =>
      request(ctx.app)
        .post('/api/streaming-sessions/initialize')
        .set('Authorization', user.auth)
        .set('Idempotency-Key', 'init-1')
        .send({ modelId: TEST_MODEL, estimatedCredits: 2 });

    const first = await send();
    const second = await send();

    expect(first.status).toBe(201);
    expect(second.status).toBe(201);
    expect(second.headers['idempotent-replayed']).toBe('true');
    expect(second.body).toEqual(first.body);
    expect(await count(ctx.db, 'streaming_sessions', 'user_id = $1', [user.id])).toBe(1);
    expect(await availableOf(ctx.db, user.id)).toBe(micro(8));
  });

  test('When the price changes after initialize, then finalize bills at the version the session started with', async () => {
    const user = await funded(10);
    await addTestModel(ctx.db, 'repriced-model', 1);
    const init = await post('initialize', user.auth, { modelId: 'repriced-model', estimatedCredits: 5 });
    await addTestModel(ctx.db, 'repriced-model', 2, { input: 10_000n, output: 20_000n, cached: 5000n });

    const res = await post('finalize', user.auth, { sessionId: init.body.sessionId, actualInputTokens: 1000, actualOutputTokens: 0 });

    expect(init.body.priceVersion).toBe(1);
    expect(res.body.usedCredits).toBe(1);
    const [record] = await ctx.db.query<{ price_version: number }>(`SELECT price_version FROM usage_records WHERE session_id = $1`, [init.body.sessionId]);
    expect(record.price_version).toBe(1);
  });
});

describe('bad input', () => {
  const cases: Array<[string, object]> = [
    ['an unknown model', { modelId: 'no-such-model', estimatedInputTokens: 10, estimatedOutputTokens: 10 }],
    ['negative tokens', { modelId: TEST_MODEL, estimatedInputTokens: -1, estimatedOutputTokens: 10 }],
    ['non-integer tokens', { modelId: TEST_MODEL, estimatedInputTokens: 1.5, estimatedOutputTokens: 10 }],
    ['tokens as strings', { modelId: TEST_MODEL, estimatedInputTokens: '10', estimatedOutputTokens: 10 }],
    ['a missing output estimate', { modelId: TEST_MODEL, estimatedInputTokens: 10 }],
    ['no estimate at all', { modelId: TEST_MODEL }],
    ['both token and credit estimates', { modelId: TEST_MODEL, estimatedInputTokens: 1, estimatedOutputTokens: 1, estimatedCredits: 1 }],
    ['zero estimated credits', { modelId: TEST_MODEL, estimatedCredits: 0 }],
    ['estimated credits with 7 decimals', { modelId: TEST_MODEL, estimatedCredits: '0.0000001' }],
    ['a ttl of 0', { modelId: TEST_MODEL, estimatedCredits: 1, ttlSeconds: 0 }],
    ['a ttl above the maximum', { modelId: TEST_MODEL, estimatedCredits: 1, ttlSeconds: 86_401 }],
    ['an unknown field', { modelId: TEST_MODEL, estimatedCredits: 1, allocatedCredits: 100 }],
    ['an empty sessionId', { sessionId: '', modelId: TEST_MODEL, estimatedCredits: 1 }],
  ];
  test.each(cases)('When initialize has %s, then 400 and nothing is held', async (_name, body) => {
    const user = await funded(10);
    const res = await post('initialize', user.auth, body);
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe((body as { modelId: string }).modelId === 'no-such-model' ? 'UNKNOWN_MODEL' : 'VALIDATION_ERROR');
    expect(await count(ctx.db, 'streaming_sessions', 'user_id = $1', [user.id])).toBe(0);
    expect(await availableOf(ctx.db, user.id)).toBe(micro(10));
  });

  // [name, endpoint, body, whether the session's id is added to the body]
  const settleCases: Array<[string, string, object, boolean]> = [
    ['finalize without sessionId', 'finalize', { actualInputTokens: 1, actualOutputTokens: 1 }, false],
    ['finalize without token counts', 'finalize', {}, true],
    ['finalize with negative tokens', 'finalize', { actualInputTokens: -5, actualOutputTokens: 1 }, true],
    ['finalize with fractional tokens', 'finalize', { actualInputTokens: 5, actualOutputTokens: 0.5 }, true],
    ['finalize with more cached than input tokens', 'finalize', { actualInputTokens: 5, actualOutputTokens: 1, cachedInputTokens: 6 }, true],
    ['abort without sessionId', 'abort', { reason: 'x' }, false],
    ['abort with negative tokens', 'abort', { actualOutputTokens: -1 }, true],
  ];
  test.each(settleCases)('When %s, then 400 and the session stays active with its hold', async (_name, path, body, withId) => {
    const user = await funded(10);
    const init = await post('initialize', user.auth, { modelId: TEST_MODEL, estimatedCredits: 2 });

    const res = await post(path, user.auth, withId ? { sessionId: init.body.sessionId, ...body } : body);

    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('VALIDATION_ERROR');
    expect(await count(ctx.db, 'streaming_sessions', `id = $1 AND status = 'active'`, [init.body.sessionId])).toBe(1);
    expect(await reservedOf(ctx.db, user.id)).toBe(micro(2));
  });
});

describe('finalize', () => {
  test('When the real cost is below the hold, then it is captured, the rest released to the lot, and one usage record written', async () => {
    const user = await funded(10);
    const init = await post('initialize', user.auth, { modelId: TEST_MODEL, estimatedInputTokens: 2000, estimatedOutputTokens: 1000 }); // 4 credits

    // 1000 input of which 400 cached (0.6 + 0.2) + 500 output (1) = 1.8 credits
    const res = await post('finalize', user.auth, { sessionId: init.body.sessionId, actualInputTokens: 1000, actualOutputTokens: 500, cachedInputTokens: 400 });

    expect(res.status).toBe(200);
    expect(res.body).toEqual({ sessionId: init.body.sessionId, status: 'completed', allocatedCredits: 4, usedCredits: 1.8, refundedCredits: 2.2, unpaidCredits: 0 });
    expect(await availableOf(ctx.db, user.id)).toBe(micro(8.2));
    expect(await reservedOf(ctx.db, user.id)).toBe(0n);
    expect(await ledgerOf(ctx.db, init.body.sessionId)).toEqual([
      ['hold', micro(4), user.lot],
      ['capture', micro(1.8), user.lot],
      ['release', micro(2.2), user.lot],
    ]);
    const records = await ctx.db.query<Record<string, string>>(
      `SELECT service, operation, model_id, input_tokens::text, output_tokens::text, cached_input_tokens::text, credits::text,
              charged_credits::text, unpaid_credits::text FROM usage_records WHERE session_id = $1`,
      [init.body.sessionId],
    );
    expect(records).toEqual([
      { service: 'streaming', operation: 'session', model_id: TEST_MODEL, input_tokens: '1000', output_tokens: '500', cached_input_tokens: '400', credits: '1800000', charged_credits: '1800000', unpaid_credits: '0' },
    ]);
  });

  test('When a session is finalized twice, then the second returns the first result and nothing is captured again', async () => {
    const user = await funded(10);
    const init = await post('initialize', user.auth, { modelId: TEST_MODEL, estimatedCredits: 3 });
    const first = await post('finalize', user.auth, { sessionId: init.body.sessionId, actualInputTokens: 1000, actualOutputTokens: 0 });

    const second = await post('finalize', user.auth, { sessionId: init.body.sessionId, actualInputTokens: 2000, actualOutputTokens: 0 });

    expect(second.status).toBe(200);
    expect(second.body).toEqual(first.body);
    expect(await count(ctx.db, 'usage_records', 'session_id = $1', [init.body.sessionId])).toBe(1);
    expect(await count(ctx.db, 'credit_transactions', `session_id = $1 AND type = 'capture'`, [init.body.sessionId])).toBe(1);
    expect(await availableOf(ctx.db, user.id)).toBe(micro(9));
  });

  test('When the real cost exceeds the hold and credits are available, then the hold is captured and the overage charged', async () => {
    const user = await funded(10);
    const init = await post('initialize', user.auth, { modelId: TEST_MODEL, estimatedCredits: 2 });

    const res = await post('finalize', user.auth, { sessionId: init.body.sessionId, actualInputTokens: 1000, actualOutputTokens: 2000 }); // 5 credits

    expect(res.body).toEqual({ sessionId: init.body.sessionId, status: 'completed', allocatedCredits: 2, usedCredits: 5, refundedCredits: 0, unpaidCredits: 0 });
    expect(await availableOf(ctx.db, user.id)).toBe(micro(5));
    expect(await ledgerOf(ctx.db, init.body.sessionId)).toEqual([
      ['hold', micro(2), user.lot],
      ['capture', micro(2), user.lot],
      ['charge', micro(3), user.lot],
    ]);
  });

  test('When the overage exceeds what is available, then everything available is charged and the rest is unpaid on the session and the record', async () => {
    const user = await funded(3);
    const init = await post('initialize', user.auth, { modelId: TEST_MODEL, estimatedCredits: 2 });

    const res = await post('finalize', user.auth, { sessionId: init.body.sessionId, actualInputTokens: 0, actualOutputTokens: 2500 }); // 5 credits

    expect(res.body).toEqual({ sessionId: init.body.sessionId, status: 'completed', allocatedCredits: 2, usedCredits: 5, refundedCredits: 0, unpaidCredits: 2 });
    expect(await availableOf(ctx.db, user.id)).toBe(0n);
    const [record] = await ctx.db.query<{ credits: string; charged: string; unpaid: string }>(
      `SELECT credits, charged_credits AS charged, unpaid_credits AS unpaid FROM usage_records WHERE session_id = $1`,
      [init.body.sessionId],
    );
    expect(record).toEqual({ credits: '5000000', charged: '3000000', unpaid: '2000000' });
    const [session] = await ctx.db.query<{ unpaid: string }>(`SELECT unpaid_credits AS unpaid FROM streaming_sessions WHERE id = $1`, [init.body.sessionId]);
    expect(session.unpaid).toBe('2000000');
  });

  test('When a hold spans two lots and the sooner-expiring one expires before finalize, then its released share is expired, not revived', async () => {
    const user = userWithRole('user');
    const soon = await grantDirect(ctx.db, user.id, 3, new Date(Date.now() + 3_600_000));
    const never = await grantDirect(ctx.db, user.id, 10);
    const init = await post('initialize', user.auth, { modelId: TEST_MODEL, estimatedCredits: 5 }); // 3 from soon, 2 from never
    await ctx.db.query(`UPDATE credit_allocations SET expires_at = now() - interval '1 minute' WHERE id = $1 RETURNING 1`, [soon]);

    // 1 credit of real cost: captured from the soonest-expiring lot first; its other 2 are released and expired.
    const res = await post('finalize', user.auth, { sessionId: init.body.sessionId, actualInputTokens: 1000, actualOutputTokens: 0 });

    expect(res.body).toEqual({ sessionId: init.body.sessionId, status: 'completed', allocatedCredits: 5, usedCredits: 1, refundedCredits: 4, unpaidCredits: 0 });
    expect(await ledgerOf(ctx.db, init.body.sessionId)).toEqual([
      ['hold', micro(3), soon],
      ['hold', micro(2), never],
      ['capture', micro(1), soon],
      ['release', micro(2), soon],
      ['expire', micro(2), soon],
      ['release', micro(2), never],
    ]);
    expect(await remainingOf(ctx.db, soon)).toBe(0n);
    expect(await remainingOf(ctx.db, never)).toBe(micro(10));
    expect(await availableOf(ctx.db, user.id)).toBe(micro(10));
  });

  test("When a user finalizes or aborts another user's session, then 404 and the session is untouched", async () => {
    const owner = await funded(10);
    const other = await funded(10);
    const init = await post('initialize', owner.auth, { modelId: TEST_MODEL, estimatedCredits: 2 });

    const fin = await post('finalize', other.auth, { sessionId: init.body.sessionId, actualInputTokens: 1, actualOutputTokens: 1 });
    const abort = await post('abort', other.auth, { sessionId: init.body.sessionId });
    const unknown = await post('finalize', other.auth, { sessionId: 'no-such-session', actualInputTokens: 1, actualOutputTokens: 1 });

    for (const res of [fin, abort, unknown]) {
      expect(res.status).toBe(404);
      expect(res.body.error.code).toBe('NOT_FOUND');
    }
    expect(fin.body.error.message).toBe(unknown.body.error.message);
    expect(await count(ctx.db, 'streaming_sessions', `id = $1 AND status = 'active'`, [init.body.sessionId])).toBe(1);
  });

  test("When an admin finalizes another user's session, then it is settled against the owner's credits", async () => {
    const owner = await funded(10);
    const admin = userWithRole('admin');
    const init = await post('initialize', owner.auth, { modelId: TEST_MODEL, estimatedCredits: 2 });

    const res = await post('finalize', admin.auth, { sessionId: init.body.sessionId, userId: owner.id, actualInputTokens: 1000, actualOutputTokens: 0 });

    expect(res.status).toBe(200);
    expect(res.body.usedCredits).toBe(1);
    expect(await availableOf(ctx.db, owner.id)).toBe(micro(9));
    const [record] = await ctx.db.query<{ user_id: string; recorded_by: string }>(`SELECT user_id, recorded_by FROM usage_records WHERE session_id = $1`, [init.body.sessionId]);
    expect(record).toEqual({ user_id: owner.id, recorded_by: admin.id });
  });

  test("When an admin aborts another user's session, then the hold goes back to the owner", async () => {
    const owner = await funded(10);
    const admin = userWithRole('admin');
    const init = await post('initialize', owner.auth, { modelId: TEST_MODEL, estimatedCredits: 2 });

    const res = await post('abort', admin.auth, { sessionId: init.body.sessionId, userId: owner.id, reason: 'stuck' });

    expect(res.status).toBe(200);
    expect(await availableOf(ctx.db, owner.id)).toBe(micro(10));
  });
});

describe('abort', () => {
  test('When a session is aborted without token counts, then the whole hold is released and a zero usage record is written', async () => {
    const user = await funded(10);
    const init = await post('initialize', user.auth, { modelId: TEST_MODEL, estimatedCredits: 4 });

    const res = await post('abort', user.auth, { sessionId: init.body.sessionId, reason: 'client went away' });

    expect(res.status).toBe(200);
    expect(res.body).toEqual({ sessionId: init.body.sessionId, status: 'aborted', allocatedCredits: 4, usedCredits: 0, refundedCredits: 4, unpaidCredits: 0 });
    expect(await availableOf(ctx.db, user.id)).toBe(micro(10));
    const [record] = await ctx.db.query<{ credits: string; metadata: object }>(`SELECT credits, metadata FROM usage_records WHERE session_id = $1`, [init.body.sessionId]);
    expect(record).toEqual({ credits: '0', metadata: { status: 'aborted', reason: 'client went away' } });
  });

  test('When a session is aborted with partial token counts, then what was streamed is charged and the rest released', async () => {
    const user = await funded(10);
    const init = await post('initialize', user.auth, { modelId: TEST_MODEL, estimatedInputTokens: 1000, estimatedOutputTokens: 2000 }); // 5

    const res = await post('abort', user.auth, { sessionId: init.body.sessionId, actualInputTokens: 1000, actualOutputTokens: 250 }); // 1.5

    expect(res.body).toEqual({ sessionId: init.body.sessionId, status: 'aborted', allocatedCredits: 5, usedCredits: 1.5, refundedCredits: 3.5, unpaidCredits: 0 });
    expect(await availableOf(ctx.db, user.id)).toBe(micro(8.5));
    expect(await ledgerOf(ctx.db, init.body.sessionId)).toEqual([
      ['hold', micro(5), user.lot],
      ['capture', micro(1.5), user.lot],
      ['release', micro(3.5), user.lot],
    ]);
  });

  test('When only output tokens are given on abort, then input counts as zero', async () => {
    const user = await funded(10);
    const init = await post('initialize', user.auth, { modelId: TEST_MODEL, estimatedCredits: 5 });
    const res = await post('abort', user.auth, { sessionId: init.body.sessionId, actualOutputTokens: 500 });
    expect(res.body.usedCredits).toBe(1);
  });

  test('When a session is aborted twice, then the second replays the first', async () => {
    const user = await funded(10);
    const init = await post('initialize', user.auth, { modelId: TEST_MODEL, estimatedCredits: 4 });
    const first = await post('abort', user.auth, { sessionId: init.body.sessionId, actualInputTokens: 1000 });
    const second = await post('abort', user.auth, { sessionId: init.body.sessionId });
    expect(second.status).toBe(200);
    expect(second.body).toEqual(first.body);
    expect(await count(ctx.db, 'usage_records', 'session_id = $1', [init.body.sessionId])).toBe(1);
  });

  test('When an aborted session is finalized, or a completed one aborted, then 409 SESSION_NOT_ACTIVE and nothing changes', async () => {
    const user = await funded(10);
    const a = await post('initialize', user.auth, { modelId: TEST_MODEL, estimatedCredits: 2 });
    const b = await post('initialize', user.auth, { modelId: TEST_MODEL, estimatedCredits: 2 });
    await post('abort', user.auth, { sessionId: a.body.sessionId });
    await post('finalize', user.auth, { sessionId: b.body.sessionId, actualInputTokens: 1000, actualOutputTokens: 0 });
    const before = await availableOf(ctx.db, user.id);

    const finalizeAborted = await post('finalize', user.auth, { sessionId: a.body.sessionId, actualInputTokens: 1000, actualOutputTokens: 0 });
    const abortCompleted = await post('abort', user.auth, { sessionId: b.body.sessionId });

    expect(finalizeAborted.status).toBe(409);
    expect(finalizeAborted.body.error).toMatchObject({ code: 'SESSION_NOT_ACTIVE', details: { status: 'aborted' } });
    expect(abortCompleted.status).toBe(409);
    expect(abortCompleted.body.error).toMatchObject({ code: 'SESSION_NOT_ACTIVE', details: { status: 'completed' } });
    expect(await availableOf(ctx.db, user.id)).toBe(before);
  });
});

describe('listing active sessions', () => {
  test("When a user lists active sessions, then only the caller's active ones are returned", async () => {
    const user = await funded(10);
    const other = await funded(10);
    const a = await post('initialize', user.auth, { modelId: TEST_MODEL, estimatedCredits: 1 });
    const b = await post('initialize', user.auth, { modelId: TEST_MODEL, estimatedCredits: 1 });
    await post('initialize', other.auth, { modelId: TEST_MODEL, estimatedCredits: 1 });
    await post('abort', user.auth, { sessionId: b.body.sessionId });

    const res = await request(ctx.app).get('/api/streaming-sessions/active').set('Authorization', user.auth);

    expect(res.status).toBe(200);
    expect(res.body).toEqual({ data: [{ ...a.body, createdAt: expect.any(String) }], nextCursor: null });
  });

  test('When an admin pages through all active sessions, then every one appears exactly once with its user', async () => {
    const admin = userWithRole('admin');
    const users = [await funded(10), await funded(10)];
    const opened = new Set<string>();
    for (let i = 0; i < 5; i++) {
      for (const u of users) opened.add((await post('initialize', u.auth, { modelId: TEST_MODEL, estimatedCredits: 0.1 })).body.sessionId);
    }
    const seen: Array<{ sessionId: string; userId: string }> = [];
    let cursor: string | null = null;
    do {
      const res: request.Response = await request(ctx.app)
        .get('/api/streaming-sessions/active/all')
        .query(cursor ? { limit: 3, cursor } : { limit: 3 })
        .set('Authorization', admin.auth);
      expect(res.status).toBe(200);
      seen.push(...res.body.data);
      cursor = res.body.nextCursor;
    } while (cursor);

    const ours = seen.filter((s) => opened.has(s.sessionId));
    expect(ours).toHaveLength(10);
    expect(new Set(seen.map((s) => `${s.userId}\n${s.sessionId}`)).size).toBe(seen.length);
    expect(ours.every((s) => users.some((u) => u.id === s.userId))).toBe(true);
  });

  test('When a cursor was not issued by the service, then 400 VALIDATION_ERROR', async () => {
    const user = userWithRole('user');
    for (const keys of [['not a time', 'x'], [1, 2], 'plain']) {
      const cursor = Buffer.from(JSON.stringify(keys)).toString('base64url');
      const res = await request(ctx.app).get('/api/streaming-sessions/active').query({ cursor }).set('Authorization', user.auth);
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe('VALIDATION_ERROR');
    }
  });

  test('When a non-admin asks for all active sessions, then 403', async () => {
    const user = userWithRole('supervisor');
    const res = await request(ctx.app).get('/api/streaming-sessions/active/all').set('Authorization', user.auth);
    expect(res.status).toBe(403);
  });
});
