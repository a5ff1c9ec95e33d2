import request from 'supertest';
import { createTestContext, type TestContext } from '../support/context';
import { availableOf, grantDirect, micro } from '../support/db';
import { bearer, tokenFor } from '../support/tokens';
import { addTestModel, ledgerProblems, TEST_MODEL } from '../sessions/support';

// Money-moving responses (POST) are written without Express's ETag and freshness work (src/lib/json-response.ts),
// and the user-mirror cache keeps a caller for 10 minutes by default. What a caller sees must not change: the
// same JSON, type and length; ETag and 304 still on GETs; a changed claim mirrored at once.
let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext({ USER_CACHE_TTL_MS: '600000' });
  await addTestModel(ctx.db);
});
afterEach(async () => {
  expect(await ledgerProblems(ctx.db)).toEqual([]);
});
afterAll(() => ctx.close());

describe('POST responses written directly', () => {
  test('When a session is opened and then replayed, then both answers are JSON with an exact length and no ETag', async () => {
    await grantDirect(ctx.db, 'jr-ann', 10);
    const auth = bearer(tokenFor({ sub: 'jr-ann' }));
    const body = { sessionId: 'jr-ann-1', modelId: TEST_MODEL, estimatedCredits: 2 };

    const created = await request(ctx.app).post('/api/streaming-sessions/initialize').set('Authorization', auth).send(body);
    const replayed = await request(ctx.app).post('/api/streaming-sessions/initialize').set('Authorization', auth).send(body);

    expect(created.status).toBe(201);
    expect(replayed.status).toBe(200);
    for (const res of [created, replayed]) {
      expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
      expect(Number(res.headers['content-length'])).toBe(Buffer.byteLength(res.text));
      expect(res.headers.etag).toBeUndefined();
      expect(res.headers['x-request-id']).toMatch(/./);
      expect(res.headers['x-content-type-options']).toBe('nosniff');
      expect(res.body).toMatchObject({ sessionId: body.sessionId, modelId: TEST_MODEL, status: 'active', estimatedCredits: 2 });
    }
    expect(created.text).toBe(JSON.stringify(created.body));
    expect(await availableOf(ctx.db, 'jr-ann')).toBe(micro(8));
  });

  test.each([
    ['no credits', { modelId: TEST_MODEL, estimatedCredits: 1 }, 402, 'INSUFFICIENT_CREDITS', 'credits'],
    // The message names the key: Content-Length must count its bytes, not its characters.
    ['an unknown non-ASCII key', { modelId: TEST_MODEL, estimatedCredits: 1, 'séance-✓': 1 }, 400, 'VALIDATION_ERROR', 'séance-✓'],
  ])('When a POST is refused for %s, then the error is JSON with an exact length and no ETag', async (_why, body, status, code, mentions) => {
    const res = await request(ctx.app)
      .post('/api/streaming-sessions/initialize')
      .set('Authorization', bearer(tokenFor({ sub: 'jr-bob' })))
      .send(body);

    expect(res.status).toBe(status);
    expect(res.body.error.code).toBe(code);
    expect(res.text).toContain(mentions);
    expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(Number(res.headers['content-length'])).toBe(Buffer.byteLength(res.text));
    expect(res.headers.etag).toBeUndefined();
  });

  test('When a GET is answered, then it still carries an ETag and a matching If-None-Match gets 304', async () => {
    const auth = bearer(tokenFor({ sub: 'jr-cid' }));

    const first = await request(ctx.app).get('/api/me').set('Authorization', auth);
    const again = await request(ctx.app).get('/api/me').set('Authorization', auth).set('If-None-Match', first.headers.etag);

    expect(first.status).toBe(200);
    expect(first.headers.etag).toMatch(/^W\/"/);
    expect(again.status).toBe(304);
  });
});

describe('the user-mirror cache with its 10-minute default', () => {
  const row = async (id: string) =>
    (await ctx.db.query<{ email: string | null; org_id: string | null }>(`SELECT email, org_id FROM user_accounts WHERE id = $1`, [id]))[0];

  test('When the same user comes back with another email or org within the TTL, then each change is mirrored at once', async () => {
    await grantDirect(ctx.db, 'jr-dan', 10);
    const as = (email: string, org?: string) => bearer(tokenFor({ sub: 'jr-dan', email, extra: org ? { org } : {} }));
    const open = (auth: string, sessionId: string) =>
      request(ctx.app).post('/api/streaming-sessions/initialize').set('Authorization', auth).send({ sessionId, modelId: TEST_MODEL, estimatedCredits: 1 });

    expect((await open(as('one@example.com'), 'jr-dan-1')).status).toBe(201);
    expect(await row('jr-dan')).toEqual({ email: 'one@example.com', org_id: null });

    expect((await request(ctx.app).get('/api/credits/balance').set('Authorization', as('two@example.com'))).status).toBe(200);
    expect(await row('jr-dan')).toEqual({ email: 'two@example.com', org_id: null });

    expect((await open(as('two@example.com', 'org-jr'), 'jr-dan-2')).status).toBe(201);
    expect(await row('jr-dan')).toEqual({ email: 'two@example.com', org_id: 'org-jr' });
  });
});
