import request from 'supertest';
import { toAppError } from '../../src/middleware/error.middleware';
import { encodeCursor } from '../../src/schemas/common';
import { createTestContext, type TestContext } from '../support/context';
import { count, grantDirect } from '../support/db';
import { bearer, tokenFor, userWithRole } from '../support/tokens';

/**
 * Issue 12, item 1: the review's repros of text and cursor problems that answered 500. Each must now be a
 * 4xx in the API.md error format and change nothing in the database.
 */
let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext();
  // Callers are mirrored on their first request: do it now so that snapshots only see what requests change.
  for (const caller of [user, supervisor, admin]) await request(ctx.app).get('/api/me').set('Authorization', caller.auth);
  await grantDirect(ctx.db, user.id, 1000);
  // A session so that abort/finalize reach the text checks with a real id.
  const res = await request(ctx.app)
    .post('/api/streaming-sessions/initialize')
    .set('Authorization', user.auth)
    .send({ sessionId: 'text-session', modelId: 'gpt-4o', estimatedCredits: 1 });
  expect(res.status).toBe(201);
});
afterAll(() => ctx.close());

const user = userWithRole('user');
const supervisor = userWithRole('supervisor');
const admin = userWithRole('admin');

async function snapshot() {
  return {
    users: await count(ctx.db, 'user_accounts'),
    lots: await count(ctx.db, 'credit_allocations'),
    ledger: await count(ctx.db, 'credit_transactions'),
    records: await count(ctx.db, 'usage_records'),
    sessions: await count(ctx.db, 'streaming_sessions'),
    keys: await count(ctx.db, 'idempotency_keys'),
  };
}

type Req = { method: 'get' | 'post' | 'put'; path: string; auth: string; body?: unknown; key?: string };
const b64 = (keys: unknown[]) => encodeCursor(keys);

const record = (extra: Record<string, unknown>) => ({ service: 'chat', operation: 'completion', credits: 1, ...extra });

/** `levels` arrays (or objects under `a`) around `inner`, and the path of the level where nesting passes 64. */
const nested = (levels: number, inner: unknown, kind: 'array' | 'object') => {
  let value = inner;
  for (let i = 0; i < levels; i++) value = kind === 'array' ? [value] : { a: value };
  return value;
};
const pathAtDepth65 = (prefix: string, kind: 'array' | 'object') => [prefix, ...Array(64).fill(kind === 'array' ? '0' : 'a')].join('.');

const refused: [string, Req, string, string][] = [
  // The fuzz's 500: metadata a few thousand levels deep (10 KB) overflowed the stack in the metadata size
  // check's JSON.stringify. Nesting past 64 levels is now refused wherever it is, before any schema runs.
  ['metadata nested 1,000 arrays deep', { method: 'post', path: '/api/usage/record', auth: user.auth, body: record({ metadata: { a: nested(1000, 1, 'array') } }) }, 'body', ['metadata', 'a', ...Array(63).fill('0')].join('.')],
  ['metadata nested 1,000 objects deep', { method: 'post', path: '/api/usage/record', auth: supervisor.auth, body: record({ userId: 'deep', metadata: nested(1000, 1, 'object') }) }, 'body', pathAtDepth65('metadata', 'object')],
  ['NUL 70 levels deep in metadata (below where text checks used to stop)', { method: 'post', path: '/api/usage/record', auth: user.auth, body: record({ metadata: nested(70, '\u0000', 'object') }) }, 'body', pathAtDepth65('metadata', 'object')],
  // The review's bypass: 20 text issues ahead of the deep metadata stopped the walk before it saw the depth.
  ['20 control characters ahead of metadata nested 5,000 levels deep', { method: 'post', path: '/api/usage/record', auth: user.auth, body: `{${Array.from({ length: 20 }, (_, i) => `"f${i}":"\\u0001",`).join('')}"service":"chat","operation":"completion","credits":1,"metadata":{"a":${'['.repeat(5000)}${']'.repeat(5000)}}}` }, 'body', 'f0'],
  ['a provider usage object nested 1,000 levels deep', { method: 'post', path: '/api/credits/check', auth: user.auth, body: { modelId: 'gpt-4o', providerUsage: { format: 'openai.chat', usage: nested(1000, 1, 'object') } } }, 'body', ['providerUsage', 'usage', ...Array(63).fill('a')].join('.')],
  // 40,000 levels, sent as text (80 KB, under the body limit; building it as a value here would overflow the
  // test's own JSON.stringify). JSON.parse takes any depth; the walk that refuses it stops at level 65.
  ['a body nested 40,000 levels deep', { method: 'post', path: '/api/usage/record', auth: user.auth, body: `{"service":"chat","operation":"completion","credits":1,"metadata":{"a":${'['.repeat(40_000)}${']'.repeat(40_000)}}}` }, 'body', ['metadata', 'a', ...Array(63).fill('0')].join('.')],
  ['NUL in a metadata value', { method: 'post', path: '/api/usage/record', auth: user.auth, body: record({ metadata: { k: '\u0000' } }) }, 'body', 'metadata.k'],
  ['a lone high surrogate in metadata', { method: 'post', path: '/api/usage/record', auth: user.auth, body: record({ metadata: { k: '\ud800' } }) }, 'body', 'metadata.k'],
  ['a lone low surrogate deep in metadata', { method: 'post', path: '/api/usage/record', auth: user.auth, body: record({ metadata: { a: [{ b: 'x\udc00' }] } }) }, 'body', 'metadata.a.0.b'],
  ['NUL in a metadata key', { method: 'post', path: '/api/usage/record', auth: user.auth, body: record({ metadata: { 'k\u0000': 1 } }) }, 'body', 'metadata.k\u0000'],
  ['a control character in a metadata key', { method: 'post', path: '/api/usage/record', auth: user.auth, body: record({ metadata: { 'k\n': 1 } }) }, 'body', 'metadata.k\n'],
  ['BEL in a metadata value', { method: 'post', path: '/api/usage/record', auth: user.auth, body: record({ metadata: { k: 'a\u0007' } }) }, 'body', 'metadata.k'],
  ['NUL in userId (supervisor record)', { method: 'post', path: '/api/usage/record', auth: supervisor.auth, body: record({ userId: 'a\u0000b' }) }, 'body', 'userId'],
  ['NUL in a note', { method: 'post', path: '/api/credits/allocate', auth: supervisor.auth, body: { userId: 'target', credits: 1, note: 'a\u0000' } }, 'body', 'note'],
  ['ESC in a note', { method: 'post', path: '/api/credits/allocate', auth: supervisor.auth, body: { userId: 'target', credits: 1, note: '\u001b[31m' } }, 'body', 'note'],
  ['a lone surrogate in a note', { method: 'post', path: '/api/credits/allocate', auth: supervisor.auth, body: { userId: 'target', credits: 1, note: '\udfff' } }, 'body', 'note'],
  ['a newline in an allocation userId', { method: 'post', path: '/api/credits/allocate', auth: supervisor.auth, body: { userId: 'tar\nget', credits: 1 } }, 'body', 'userId'],
  ['DEL in an allocation userId', { method: 'post', path: '/api/credits/allocate', auth: supervisor.auth, body: { userId: 'tar\u007fget', credits: 1 } }, 'body', 'userId'],
  ['a 256-character userId', { method: 'post', path: '/api/credits/allocate', auth: supervisor.auth, body: { userId: 'u'.repeat(256), credits: 1 } }, 'body', 'userId'],
  ['NUL in an abort reason', { method: 'post', path: '/api/streaming-sessions/abort', auth: user.auth, body: { sessionId: 'text-session', reason: 'x\u0000' } }, 'body', 'reason'],
  ['a lone surrogate in an abort reason', { method: 'post', path: '/api/streaming-sessions/abort', auth: user.auth, body: { sessionId: 'text-session', reason: '\ud83d' } }, 'body', 'reason'],
  ['NUL in a sessionId', { method: 'post', path: '/api/streaming-sessions/initialize', auth: user.auth, body: { sessionId: 's\u0000', modelId: 'gpt-4o', estimatedCredits: 1 } }, 'body', 'sessionId'],
  // The second audit: a right-to-left override makes an id display as another one (console, CSV, logs).
  ['a right-to-left override in an allocation userId', { method: 'post', path: '/api/credits/allocate', auth: supervisor.auth, body: { userId: '\u202egpt-4o', credits: 1 } }, 'body', 'userId'],
  ['a left-to-right isolate in a sessionId', { method: 'post', path: '/api/streaming-sessions/initialize', auth: user.auth, body: { sessionId: 'a\u2066b', modelId: 'gpt-4o', estimatedCredits: 1 } }, 'body', 'sessionId'],
  ['a right-to-left mark in an org id', { method: 'put', path: `/api/users/${'x'}/org`, auth: supervisor.auth, body: { orgId: 'acme\u200f' } }, 'body', 'orgId'],
  // The second audit: a metadata key "__proto__" was dropped silently, with a 201.
  ['a metadata key __proto__', { method: 'post', path: '/api/usage/record', auth: user.auth, body: '{"service":"chat","operation":"completion","credits":1,"metadata":{"__proto__":{"polluted":1},"k":1}}' }, 'body', 'metadata.__proto__'],
  ['NUL in the userId path parameter', { method: 'get', path: '/api/credits/balance/a%00b', auth: supervisor.auth }, 'params', 'userId'],
  ['a lone surrogate in the userId path parameter', { method: 'get', path: '/api/usage/stats/%ED%A0%80', auth: supervisor.auth }, 'params', ''],
  ['NUL in the userId query parameter', { method: 'get', path: '/api/usage/records?userId=a%00', auth: supervisor.auth }, 'query', 'userId'],
  ['NUL in the ledger userId query parameter', { method: 'get', path: '/api/credits/transactions?userId=%00', auth: supervisor.auth }, 'query', 'userId'],
  ['NUL in a modelId path parameter', { method: 'put', path: '/api/models/gpt%00x', auth: admin.auth, body: { inputPricePer1M: 1, outputPricePer1M: 1 } }, 'params', 'modelId'],
  ['a control character in an unknown query parameter of a route without one', { method: 'get', path: '/api/credits/balance?x=%01', auth: user.auth }, 'query', 'x'],
  // Year 0000 (ISO's 1 BC) exists in JavaScript dates but not in PostgreSQL's: named at the edge.
  ['a stats range from year 0000', { method: 'get', path: '/api/usage/stats?from=0000-01-01T00:00:00Z', auth: user.auth }, 'query', 'from'],
  ['a records range to year 0000', { method: 'get', path: '/api/usage/records?to=0000-01-01', auth: user.auth }, 'query', 'to'],
  ['a system stats range from year 0000', { method: 'get', path: '/api/usage/system-stats?from=0000-12-31&to=0001-01-01', auth: admin.auth }, 'query', 'from'],
  // Unknown query parameters are refused like unknown body fields (the audit's typo: ?user_id= answered with
  // the supervisor's own ledger), on routes with a query schema and on routes that take none.
  ['a misspelt userId on the ledger', { method: 'get', path: '/api/credits/transactions?user_id=someone', auth: supervisor.auth }, 'query', 'user_id'],
  ['a userId on the own-balance route', { method: 'get', path: '/api/credits/balance?userId=someone', auth: supervisor.auth }, 'query', 'userId'],
  ['an unknown parameter on the events list', { method: 'get', path: '/api/events?kind=credits.low', auth: admin.auth }, 'query', 'kind'],
  ['an unknown parameter on the active sessions', { method: 'get', path: '/api/streaming-sessions/active?status=active', auth: user.auth }, 'query', 'status'],
  ['an unknown parameter on reconcile', { method: 'get', path: '/api/admin/reconcile?user=x', auth: admin.auth }, 'query', 'user'],
  // The second audit: a key given twice credited the last userId, while a proxy reading the first sees another.
  ['a userId given twice', { method: 'post', path: '/api/credits/allocate', auth: supervisor.auth, body: '{"userId":"target","credits":1,"userId":"other"}' }, 'body', 'userId'],
  ['a metadata key given twice', { method: 'post', path: '/api/usage/record', auth: user.auth, body: '{"service":"chat","operation":"completion","credits":1,"metadata":{"k":1,"k":2}}' }, 'body', 'metadata.k'],
  // A route that takes no body refuses fields in one (second audit: DELETE, GET and webhook tests ignored them).
  ['a body field on a route that takes no body', { method: 'get', path: '/api/credits/balance', auth: user.auth, body: { userId: 'someone' } }, 'body', 'userId'],
  ['an array body on a route that takes no body', { method: 'get', path: '/api/credits/balance', auth: user.auth, body: '[1]' }, 'body', ''],
  // Cursors: arity, type and range checked in code.
  ['a records cursor with an id above bigint', { method: 'get', path: `/api/usage/records?cursor=${b64(['9999999999999999999', '1'])}`, auth: user.auth }, 'query', 'cursor'],
  ['a records cursor whose id is 2^63', { method: 'get', path: `/api/usage/records?cursor=${b64(['1', '9223372036854775808'])}`, auth: user.auth }, 'query', 'cursor'],
  ['a records cursor with a negative time', { method: 'get', path: `/api/usage/records?cursor=${b64(['-1', '1'])}`, auth: user.auth }, 'query', 'cursor'],
  ['a records cursor with three keys', { method: 'get', path: `/api/usage/records?cursor=${b64(['1', '1', '1'])}`, auth: user.auth }, 'query', 'cursor'],
  ['a records cursor with numbers, not strings', { method: 'get', path: `/api/usage/records?cursor=${b64([1, 1])}`, auth: user.auth }, 'query', 'cursor'],
  ['an active-sessions cursor with an impossible date', { method: 'get', path: `/api/streaming-sessions/active?cursor=${b64(['2026-13-45 99:99:99+00', 'x'])}`, auth: user.auth }, 'query', 'cursor'],
  ['an active-sessions cursor with 31 February', { method: 'get', path: `/api/streaming-sessions/active?cursor=${b64(['2026-02-31 00:00:00+00', 'x'])}`, auth: user.auth }, 'query', 'cursor'],
  ['an admin active-sessions cursor with an impossible date', { method: 'get', path: `/api/streaming-sessions/active/all?cursor=${b64(['2026-01-01 24:00:00+00', 'x', 'y'])}`, auth: admin.auth }, 'query', 'cursor'],
  ['a ledger cursor above bigint', { method: 'get', path: `/api/credits/transactions?cursor=${b64(['99999999999999999999'])}`, auth: user.auth }, 'query', 'cursor'],
  ['a ledger cursor that is an object', { method: 'get', path: `/api/credits/transactions?cursor=${b64([{ id: 1 }])}`, auth: user.auth }, 'query', 'cursor'],
  ['a cursor that is not base64url', { method: 'get', path: '/api/credits/transactions?cursor=%2B%2F%00', auth: user.auth }, 'query', 'cursor'],
];

describe('Hostile text and cursors are refused at the edge', () => {
  test.each(refused)('When a request has %s, then 400 VALIDATION_ERROR naming it and nothing changes', async (_name, req, location, path) => {
    const before = await snapshot();
    let call = request(ctx.app)[req.method](req.path).set('Authorization', req.auth).set('Idempotency-Key', `k-${Math.random()}`);
    if (typeof req.body === 'string') call = call.set('Content-Type', 'application/json').send(req.body);
    else if (req.body !== undefined) call = call.send(req.body as object);
    const res = await call;

    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('VALIDATION_ERROR');
    expect(res.body.error.details.problems).toEqual(expect.arrayContaining([expect.objectContaining({ location, path })]));
    expect(await snapshot()).toEqual(before);
  });

  test('When a route that takes no body gets an empty JSON object, then it answers as without one', async () => {
    const res = await request(ctx.app).get('/api/credits/balance').set('Authorization', user.auth).send({});
    expect(res.status).toBe(200);
  });

  test('When a note, a reason or a metadata value has tab, CR and LF, then they are accepted and stored as sent', async () => {
    const note = 'line one\r\n\tline two';
    const allocate = await request(ctx.app).post('/api/credits/allocate').set('Authorization', supervisor.auth).send({ userId: 'multiline', credits: 1, note });
    expect(allocate.status).toBe(201);
    expect(allocate.body.allocation.note).toBe(note);

    const used = await request(ctx.app).post('/api/usage/record').set('Authorization', user.auth).send(record({ metadata: { text: 'a\tb\nc', emoji: '\ud83d\ude00' } }));
    expect(used.status).toBe(201);
    const [row] = await ctx.db.query<{ metadata: Record<string, string> }>(`SELECT metadata FROM usage_records WHERE id = $1`, [used.body.usageRecord.id]);
    expect(row.metadata).toEqual({ text: 'a\tb\nc', emoji: '\ud83d\ude00' });
  });

  test('When an id has 255 printable characters (non-ASCII included), then it is accepted', async () => {
    const id = 'é'.repeat(255);
    const res = await request(ctx.app).post('/api/credits/allocate').set('Authorization', supervisor.auth).send({ userId: id, credits: 1 });
    expect(res.status).toBe(201);
    expect(res.body.allocation.allocatedBy).toBe(supervisor.id);
    expect(await count(ctx.db, 'user_accounts', 'id = $1', [id])).toBe(1);
  });

  test("When a model id has '@' or non-ASCII and a session id has spaces or non-ASCII, then they work end to end (API.md: 1-255 printable characters)", async () => {
    const model = 'vertex_ai/claude-3-5-sonnet@20240620 · é';
    const priced = await request(ctx.app)
      .put(`/api/models/${encodeURIComponent(model)}`)
      .set('Authorization', admin.auth)
      .send({ inputPricePer1M: 3, outputPricePer1M: 15 });
    expect(priced.status).toBe(201);
    expect(priced.body.modelId).toBe(model);
    const versions = await request(ctx.app).get(`/api/models/${encodeURIComponent(model)}/versions`).set('Authorization', admin.auth);
    expect(versions.status).toBe(200);
    for (const sessionId of ['a b', 'séance-✓', 's'.repeat(255)]) {
      const opened = await request(ctx.app)
        .post('/api/streaming-sessions/initialize')
        .set('Authorization', user.auth)
        .send({ sessionId, modelId: model, estimatedInputTokens: 1000, estimatedOutputTokens: 1000 });
      expect(opened.status).toBe(201);
      expect(opened.body).toMatchObject({ sessionId, modelId: model });
      const settled = await request(ctx.app)
        .post('/api/streaming-sessions/finalize')
        .set('Authorization', user.auth)
        .send({ sessionId, actualInputTokens: 100, actualOutputTokens: 100 });
      expect(settled.status).toBe(200);
      expect(settled.body.usedCredits).toBe(0.0018);
    }
    const longest = await request(ctx.app).put(`/api/models/${'m'.repeat(255)}`).set('Authorization', admin.auth).send({ inputPricePer1M: 1, outputPricePer1M: 1 });
    expect(longest.status).toBe(201);
    const tooLong = await request(ctx.app).put(`/api/models/${'m'.repeat(256)}`).set('Authorization', admin.auth).send({ inputPricePer1M: 1, outputPricePer1M: 1 });
    expect(tooLong.status).toBe(400);
    const sessionTooLong = await request(ctx.app)
      .post('/api/streaming-sessions/initialize')
      .set('Authorization', user.auth)
      .send({ sessionId: 's'.repeat(256), modelId: model, estimatedCredits: 1 });
    expect(sessionTooLong.status).toBe(400);
    expect(sessionTooLong.body.error.details.problems[0].path).toBe('sessionId');
  });

  test('When an issued cursor is followed, then the pages still chain (valid cursors pass the checks)', async () => {
    for (let i = 0; i < 3; i++) {
      await request(ctx.app).post('/api/usage/record').set('Authorization', supervisor.auth).send(record({ userId: 'pager' }));
    }
    const pager = bearer(tokenFor({ sub: 'pager' }));
    const first = await request(ctx.app).get('/api/usage/records?limit=2').set('Authorization', pager);
    expect(first.status).toBe(200);
    const second = await request(ctx.app).get(`/api/usage/records?limit=2&cursor=${first.body.nextCursor}`).set('Authorization', pager);
    expect(second.status).toBe(200);
    expect(second.body.data).toHaveLength(1);
    const ledger1 = await request(ctx.app).get('/api/credits/transactions?limit=1').set('Authorization', user.auth);
    const ledger2 = await request(ctx.app).get(`/api/credits/transactions?limit=1&cursor=${ledger1.body.nextCursor}`).set('Authorization', user.auth);
    expect(ledger2.status).toBe(200);
  });
});

describe('Token claims', () => {
  test.each([
    ['a NUL', 'a\u0000b'],
    ['a newline', 'alice\nadmin'],
    ['DEL', 'bob\u007f'],
    ['a lone surrogate', 'x\ud800'],
    ['256 characters', 'u'.repeat(256)],
    ['the system namespace', 'system:session-sweeper'],
    ['the bare system actor', 'system'],
  ])('When the token subject has %s, then 401 and no user is mirrored', async (_name, sub) => {
    const users = await count(ctx.db, 'user_accounts');
    const res = await request(ctx.app).get('/api/credits/balance').set('Authorization', bearer(tokenFor({ sub })));
    expect(res.status).toBe(401);
    expect(res.body.error.code).toBe('UNAUTHENTICATED');
    expect(await count(ctx.db, 'user_accounts')).toBe(users);
  });

  test('When email or username claims hold control characters, then they are dropped and the request works', async () => {
    const sub = 'claims-with-controls';
    const res = await request(ctx.app)
      .get('/api/me')
      .set('Authorization', bearer(tokenFor({ sub, email: 'a\u0000@example.com', username: 'bob\u0007' })));
    expect(res.status).toBe(200);
    const [row] = await ctx.db.query<{ email: string | null; username: string | null }>(`SELECT email, username FROM user_accounts WHERE id = $1`, [sub]);
    expect(row).toEqual({ email: null, username: null });
  });

  test('When a token expired 3 seconds ago, then the default 5-second clock tolerance accepts it', async () => {
    const res = await request(ctx.app).get('/api/me').set('Authorization', bearer(tokenFor({ expiresIn: -3 })));
    expect(res.status).toBe(200);
    const late = await request(ctx.app).get('/api/me').set('Authorization', bearer(tokenFor({ expiresIn: -30 })));
    expect(late.status).toBe(401);
  });
});

describe('The error mapper', () => {
  test.each(['22P05', '22P02', '22003', '22008', '22007', '22021'])(
    'When PostgreSQL answers data exception %s, then it is a 400 VALIDATION_ERROR, not a 500',
    (code) => {
      const error = Object.assign(new Error('driver text'), { original: { code } });
      expect(toAppError(error).code).toBe('VALIDATION_ERROR');
    },
  );
});
