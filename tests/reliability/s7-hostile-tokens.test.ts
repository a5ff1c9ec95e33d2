import crypto from 'node:crypto';
import jwt from 'jsonwebtoken';
import { checkLedger, moneySnapshot } from './harness/checks';
import { startCluster, type Cluster } from './harness/cluster';
import { figure } from './harness/figures';
import { api, call, type CallResult } from './harness/http';
import { allocate, finalize, initialize, MODEL, newId, recordUsage } from './harness/ops';
import { exampleFor, fieldsOf, fillPath, loadRouteTable } from './harness/routes';
import type { RouteSpec } from '../../src/routes/route-table';
import { handMadeToken, hmac, hs256Issuer, nowSeconds, rs256Issuer } from './harness/tokens';
import { TEST_JWT_SECRET } from '../support/tokens';

/**
 * Scenario 7 (tokens): forged, stale, mis-addressed and tampered tokens against two real instances, one
 * pinned to HS256 and one to RS256, both with issuer and audience configured. Every one must be a 401 in
 * the API's error format, and none may leave a trace (no user row mirrored from its claims).
 * Then authorization, over the service's own route table: object level (BOLA: a user naming another
 * user's ids) and function level (user and supervisor on admin routes, user on supervisor routes).
 */
const ISS = 'https://auth.example.test';
const AUD = 'accounting-service';
const hs = hs256Issuer(ISS, AUD);
const rs = rs256Issuer(ISS, AUD);

let cluster: Cluster;
let hsUrl: string;
let rsUrl: string;

beforeAll(async () => {
  cluster = await startCluster({
    name: 's7',
    instances: 2,
    // RS256 has no shared secret to derive the webhook key from; both instances use the same one.
    env: { JWT_ISSUER: ISS, JWT_AUDIENCE: AUD, USER_CACHE_TTL_MS: '0', WEBHOOK_SECRET_KEY: 'reliability-webhook-secret-key-0123456789' },
    envOf: (i): Record<string, string> => (i === 0 ? { JWT_ALGORITHM: 'HS256' } : { JWT_ALGORITHM: 'RS256', JWT_PUBLIC_KEY: rs.publicPem, JWT_SECRET: '' }),
  });
  [hsUrl, rsUrl] = cluster.services.map((s) => s.url);
});
afterAll(() => cluster?.stop());

const me = (url: string, authorization: string | undefined, extra: { headers?: Record<string, string>; path?: string } = {}) =>
  call(url, { path: extra.path ?? '/api/me', headers: { ...(authorization ? { Authorization: authorization } : {}), ...extra.headers } });

/** A 401 in the API's error format with nothing internal in it. */
function problemWith401(res: CallResult): string | null {
  if (res.status !== 401) return `status ${res.status} ${res.text.slice(0, 200)}`;
  const body = res.json as { error?: { code?: string; message?: string; requestId?: string } };
  if (body?.error?.code !== 'UNAUTHENTICATED' || typeof body.error.message !== 'string' || typeof body.error.requestId !== 'string') {
    return `not the error format: ${res.text.slice(0, 200)}`;
  }
  if (/\bat \S+ \(|node_modules|JsonWebTokenError|invalid signature|jwt malformed/i.test(res.text)) return `leaks internals: ${res.text}`;
  return null;
}

const exp = () => nowSeconds() + 3600;
const sub = (kind: string) => `mallory-${kind}`;

/** Hostile tokens for the HS256 instance. Every subject starts with "mallory-" so traces can be found. */
function hostileForHs256(): Array<[string, string]> {
  const valid = hs.sign({ sub: sub('tampered') });
  const [h, , s] = valid.split('.');
  const escalated = Buffer.from(JSON.stringify({ sub: sub('tampered'), role: 'admin', iss: ISS, aud: AUD, exp: exp() })).toString('base64url');
  return [
    ['alg none', handMadeToken({ alg: 'none', typ: 'JWT' }, { sub: sub('none'), role: 'admin', iss: ISS, aud: AUD, exp: exp() }, () => '')],
    ['alg None (case)', handMadeToken({ alg: 'None', typ: 'JWT' }, { sub: sub('None'), role: 'admin', iss: ISS, aud: AUD, exp: exp() }, () => '')],
    ['alg none with a signature', handMadeToken({ alg: 'none' }, { sub: sub('none2'), iss: ISS, aud: AUD, exp: exp() }, hmac('sha256', TEST_JWT_SECRET))],
    ['HS512 with the right secret (algorithm not pinned)', hs.sign({ sub: sub('hs512') }, { algorithm: 'HS512' })],
    ['HS256 with the wrong secret', jwt.sign({ sub: sub('wrong'), iss: ISS, aud: AUD }, 'x'.repeat(48), { expiresIn: '1h' })],
    ['HS256 with an empty secret', handMadeToken({ alg: 'HS256' }, { sub: sub('empty'), iss: ISS, aud: AUD, exp: exp() }, hmac('sha256', ''))],
    ['RS256 from a stranger', rs256Issuer(ISS, AUD).sign({ sub: sub('rs-stranger') })],
    ['expired', hs.sign({ sub: sub('expired'), exp: nowSeconds() - 120 })],
    ['not yet valid (nbf in the future)', hs.sign({ sub: sub('nbf'), nbf: nowSeconds() + 600 })],
    ['wrong issuer', hs256Issuer('https://evil.example', AUD).sign({ sub: sub('iss') })],
    ['no issuer', jwt.sign({ sub: sub('no-iss'), aud: AUD }, TEST_JWT_SECRET, { expiresIn: '1h' })],
    ['wrong audience', hs256Issuer(ISS, 'other-service').sign({ sub: sub('aud') })],
    ['no audience', jwt.sign({ sub: sub('no-aud'), iss: ISS }, TEST_JWT_SECRET, { expiresIn: '1h' })],
    ['tampered payload (role raised to admin)', `${h}.${escalated}.${s}`],
    ['signature stripped', `${h}.${valid.split('.')[1]}.`],
    ['missing sub', hs.sign({})],
    ['empty sub', hs.sign({ sub: '' })],
    ['numeric sub', hs.sign({ sub: 12345 as unknown as string })],
    ['sub of 300 characters', hs.sign({ sub: sub('long') + 'x'.repeat(300) })],
    ['no exp', jwt.sign({ sub: sub('no-exp'), iss: ISS, aud: AUD }, TEST_JWT_SECRET)],
    ['exp as a string', handMadeToken({ alg: 'HS256', typ: 'JWT' }, { sub: sub('exp-string'), iss: ISS, aud: AUD, exp: String(exp()) }, hmac('sha256', TEST_JWT_SECRET))],
    ['unknown role', hs.sign({ sub: sub('root'), role: 'root' })],
    ['role as an array', hs.sign({ sub: sub('role-array'), role: ['admin'] })],
    ['payload not JSON', handMadeToken({ alg: 'HS256', typ: 'JWT' }, Buffer.from('not json') as unknown as object, hmac('sha256', TEST_JWT_SECRET))],
    ['kid path traversal', handMadeToken({ alg: 'HS256', kid: '../../../../dev/null' }, { sub: sub('kid'), iss: ISS, aud: AUD, exp: exp() }, hmac('sha256', ''))],
    ['embedded jwk header', (() => {
      const attacker = rs256Issuer(ISS, AUD);
      const jwk = crypto.createPublicKey(attacker.publicPem).export({ format: 'jwk' });
      return jwt.sign({ sub: sub('jwk'), iss: ISS, aud: AUD }, attacker.privateKey, { algorithm: 'RS256', expiresIn: '1h', header: { alg: 'RS256', jwk } as jwt.JwtHeader });
    })()],
    ['two segments only', valid.split('.').slice(0, 2).join('.')],
    ['garbage', 'not-a-token'],
  ];
}

/** Hostile tokens for the RS256 instance, starting with the classic key-confusion attack. */
function hostileForRs256(): Array<[string, string]> {
  const confusion = (pem: string) =>
    handMadeToken({ alg: 'HS256', typ: 'JWT' }, { sub: sub('confusion'), role: 'admin', iss: ISS, aud: AUD, exp: exp() }, hmac('sha256', pem));
  return [
    ['HS256 signed with the RS256 public key (PEM)', confusion(rs.publicPem)],
    ['HS256 signed with the public key without a trailing newline', confusion(rs.publicPem.trim())],
    ['HS256 signed with the shared test secret', hs.sign({ sub: sub('hs-on-rs') })],
    ['RS256 from a stranger', rs256Issuer(ISS, AUD).sign({ sub: sub('rs-stranger2') })],
    ['RS512 with the right key (algorithm not pinned)', rs.sign({ sub: sub('rs512') }, { algorithm: 'RS512' })],
    ['PS256 with the right key', rs.sign({ sub: sub('ps256') }, { algorithm: 'PS256' })],
    ['alg none', handMadeToken({ alg: 'none' }, { sub: sub('none-rs'), iss: ISS, aud: AUD, exp: exp() }, () => '')],
    ['expired', rs.sign({ sub: sub('expired-rs'), exp: nowSeconds() - 120 })],
    ['not yet valid', rs.sign({ sub: sub('nbf-rs'), nbf: nowSeconds() + 600 })],
    ['wrong audience', jwt.sign({ sub: sub('aud-rs'), iss: ISS, aud: 'other' }, rs.privateKey, { algorithm: 'RS256', expiresIn: '1h' })],
    ['wrong issuer', jwt.sign({ sub: sub('iss-rs'), iss: 'https://evil.example', aud: AUD }, rs.privateKey, { algorithm: 'RS256', expiresIn: '1h' })],
  ];
}

/** Malformed Authorization headers (the token itself may be valid). */
function hostileHeaders(valid: string): Array<[string, string | undefined]> {
  return [
    ['no Authorization header', undefined],
    ['Basic scheme', `Basic ${Buffer.from('admin:admin').toString('base64')}`],
    ['token without scheme', valid],
    ['Bearer with nothing', 'Bearer '],
    ['two tokens', `Bearer ${valid} ${valid}`],
    ['token with a comma', `Bearer ${valid},${valid}`],
    ['token with trailing garbage', `Bearer ${valid}!`],
  ];
}

describe('scenario 7: hostile tokens', () => {
  test('When a request carries a forged, stale, mis-addressed or tampered token, then every instance answers 401 and mirrors nobody', async () => {
    // Control: the instances do accept a genuine token, so a 401 below means "refused", not "broken".
    expect((await me(hsUrl, `Bearer ${hs.sign({ sub: 'genuine-hs' })}`)).status).toBe(200);
    expect((await me(rsUrl, `Bearer ${rs.sign({ sub: 'genuine-rs' })}`)).status).toBe(200);

    const cases: Array<[string, string, string | undefined]> = [
      ...hostileForHs256().map(([name, t]): [string, string, string] => [`HS256 instance: ${name}`, hsUrl, `Bearer ${t}`]),
      ...hostileForRs256().map(([name, t]): [string, string, string] => [`RS256 instance: ${name}`, rsUrl, `Bearer ${t}`]),
      ...hostileHeaders(hs.sign({ sub: 'genuine-hs' })).map(([name, h]): [string, string, string | undefined] => [`HS256 instance: ${name}`, hsUrl, h]),
      // A valid token in the query string or a cookie is not a bearer token.
      ['token in the query string', hsUrl, undefined],
      ['token in a cookie', hsUrl, undefined],
    ];
    const genuine = hs.sign({ sub: sub('elsewhere') });
    const failures: string[] = [];
    for (const [name, url, authorization] of cases) {
      const extra =
        name === 'token in the query string'
          ? { path: `/api/me?access_token=${genuine}&token=${genuine}` }
          : name === 'token in a cookie'
            ? { headers: { Cookie: `token=${genuine}; access_token=${genuine}` } }
            : {};
      const problem = problemWith401(await me(url, authorization, extra));
      if (problem) failures.push(`${name}: ${problem}`);
    }

    const traces = await cluster.pg.sql<{ id: string }>(`SELECT id FROM user_accounts WHERE id LIKE 'mallory-%'`);
    expect(failures).toEqual([]);
    expect(traces).toEqual([]);
    figure(`scenario 7a: hostile tokens refused with 401 ${cases.length - failures.length}/${cases.length} (HS256 and RS256 instances, issuer+audience pinned); users mirrored from them=0`);
  });

  test('When the role is claimed outside the signed token (body, query, headers), then it is ignored', async () => {
    const token = hs.sign({ sub: 'plain-user', role: 'user' });
    const res = await call(hsUrl, {
      method: 'GET',
      path: '/api/me',
      headers: {
        Authorization: `Bearer ${token}`,
        'X-Role': 'admin',
        'X-User-Role': 'admin',
        'X-User-Id': 'admin-user',
        'X-Forwarded-User': 'admin-user',
        'X-Original-URL': '/api/admin/reconcile',
        'X-HTTP-Method-Override': 'DELETE',
      },
    });
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ userId: 'plain-user', role: 'user' });
    // In the body or the query the claim is not even read: /api/me takes neither, so the fields are a 400,
    // and nothing is granted.
    const inBody = await call(hsUrl, {
      method: 'GET',
      path: '/api/me',
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ role: 'admin', sub: 'admin-user', userId: 'admin-user' }),
    });
    expect(inBody.status).toBe(400);
    const inQuery = await call(hsUrl, { method: 'GET', path: '/api/me?role=admin&sub=admin-user', headers: { Authorization: `Bearer ${token}` } });
    expect(inQuery.status).toBe(400);
    const rows = await cluster.pg.sql<{ id: string; role: string }>(`SELECT id, role FROM user_accounts WHERE id IN ('plain-user', 'admin-user')`);
    expect(rows).toEqual([{ id: 'plain-user', role: 'user' }]);
    const ledger = await checkLedger(cluster.pg, { url: hsUrl, adminToken: hs.sign({ sub: 's7-admin', role: 'admin' }) });
    expect(ledger.problems).toEqual([]);
    figure('scenario 7b: role or identity claimed in headers: ignored, in the body or the query: 400 (caller stays role=user, no other user touched)');
  });
});

describe('scenario 7: broken object- and function-level authorization', () => {
  let routes: RouteSpec[];
  const alice = { id: 's7-alice', token: '' };
  const mallory = { id: 's7-mallory', token: '' };
  const secrets: string[] = [];
  let activeSession = '';
  let doneSession = '';

  beforeAll(async () => {
    routes = await loadRouteTable();
    alice.token = hs.sign({ sub: alice.id, role: 'user' });
    mallory.token = hs.sign({ sub: mallory.id, role: 'user' });
    const supervisor = hs.sign({ sub: 's7-supervisor', role: 'supervisor' });
    // Alice has money, a running session, a finished one and usage; Mallory has her own, so lists are not empty.
    for (const u of [alice, mallory]) expect((await allocate(hsUrl, supervisor, { userId: u.id, credits: 100, note: `lot-of-${u.id}` })).status).toBe(201);
    activeSession = newId('s7-alice-active');
    doneSession = newId('s7-alice-done');
    expect((await initialize(hsUrl, alice.token, { sessionId: activeSession, modelId: MODEL, estimatedCredits: 2 })).status).toBe(201);
    expect((await initialize(hsUrl, alice.token, { sessionId: doneSession, modelId: MODEL, estimatedCredits: 2 })).status).toBe(201);
    expect((await finalize(hsUrl, alice.token, { sessionId: doneSession, actualInputTokens: 100, actualOutputTokens: 100 })).status).toBe(200);
    const marker = newId('s7-alice-usage');
    expect((await recordUsage(hsUrl, alice.token, { service: 'chat', operation: 'completion', credits: 1, metadata: { marker } })).status).toBe(201);
    expect((await initialize(hsUrl, mallory.token, { sessionId: newId('s7-mallory'), modelId: MODEL, estimatedCredits: 1 })).status).toBe(201);
    secrets.push(alice.id, activeSession, doneSession, marker, `lot-of-${alice.id}`);
  });

  test("When a user names another user's ids on every route, then 403/404 and none of their data comes back", async () => {
    const aliceBefore = await moneySnapshot(cluster.pg, alice.id);
    const failures: string[] = [];
    let attempts = 0;
    for (const route of routes.filter((r) => r.access !== 'public')) {
      for (const sessionId of [activeSession, doneSession]) {
        const params = { userId: alice.id, sessionId, modelId: MODEL, id: sessionId };
        const queryFields = Object.keys(fieldsOf(route.request?.query));
        const query = ['userId', ...queryFields.filter((f) => /sessionId/.test(f))].map((f) => `${f}=${encodeURIComponent(f === 'userId' ? alice.id : sessionId)}`).join('&');
        const body = route.method === 'get' ? undefined : exampleFor(route.request?.body, { userId: alice.id, sessionId, modelId: MODEL, credits: 1, estimatedCredits: 1, service: 'chat', operation: 'completion' }, true);
        // Two variants: the route as documented with Alice's ids, and with ?userId= smuggled in.
        for (const path of [fillPath(route.path, params), `${fillPath(route.path, params)}?${query}`]) {
          attempts++;
          const res = await api(hsUrl, mallory.token, route.method.toUpperCase(), path, body);
          const leaked = secrets.filter((secret) => res.text.includes(secret));
          if (res.status >= 500) failures.push(`${route.method} ${path}: ${res.status}`);
          if (res.status < 300 && leaked.length) failures.push(`${route.method} ${path}: ${res.status} leaks ${leaked.join(', ')}`);
          if (res.status >= 300 && ![400, 403, 404, 409, 422].includes(res.status)) failures.push(`${route.method} ${path}: unexpected ${res.status}`);
          if (res.status >= 400 && leaked.filter((l) => l !== alice.id && l !== activeSession && l !== doneSession).length) failures.push(`${route.method} ${path}: error leaks ${leaked.join(', ')}`);
        }
      }
    }
    const aliceAfter = await moneySnapshot(cluster.pg, alice.id);
    const sessions = await cluster.pg.sql<{ id: string; status: string }>(`SELECT id, status FROM streaming_sessions WHERE user_id = $1 ORDER BY id`, [alice.id]);
    expect(failures).toEqual([]);
    expect(aliceAfter).toEqual(aliceBefore);
    expect(Object.fromEntries(sessions.map((r) => [r.id, r.status]))).toEqual({ [activeSession]: 'active', [doneSession]: 'completed' });
    // The obvious attacks, spelled out, must be refused outright (not just answered with Mallory's own data).
    const direct: Array<[string, string, string, unknown, number[]]> = [
      ['balance of another user', 'GET', `/api/credits/balance/${alice.id}`, undefined, [403]],
      ['transactions of another user', 'GET', `/api/credits/transactions?userId=${alice.id}`, undefined, [403]],
      ['usage stats of another user', 'GET', `/api/usage/stats/${alice.id}`, undefined, [403]],
      ['usage records of another user', 'GET', `/api/usage/records?userId=${alice.id}`, undefined, [400, 403]],
      ["finalize another user's session", 'POST', '/api/streaming-sessions/finalize', { sessionId: activeSession, actualInputTokens: 1, actualOutputTokens: 1 }, [404]],
      ["abort another user's session", 'POST', '/api/streaming-sessions/abort', { sessionId: activeSession }, [404]],
      ['usage charged to another user', 'POST', '/api/usage/record', { service: 'chat', operation: 'x', credits: 1, userId: alice.id }, [403]],
      ['credits given to oneself', 'POST', '/api/credits/allocate', { userId: mallory.id, credits: 1000 }, [403]],
    ];
    for (const [name, method, path, body, allowed] of direct) {
      const res = await api(hsUrl, mallory.token, method, path, body);
      if (!allowed.includes(res.status)) failures.push(`${name}: ${res.status} ${res.text.slice(0, 150)}`);
    }
    expect(failures).toEqual([]);
    figure(`scenario 7c: BOLA: ${attempts} requests by one user naming another's userId/sessionId on ${routes.filter((r) => r.access !== 'public').length} routes + ${direct.length} direct attacks: 0 leaks, 0 changes to the victim's money, refused with 403/404`);
  });

  test('When a user or supervisor calls admin routes (and a user supervisor routes), then 403 whatever the method or spelling', async () => {
    const supervisor = hs.sign({ sub: 's7-supervisor', role: 'supervisor' });
    const failures: string[] = [];
    let attempts = 0;
    const guarded = routes.filter((r) => r.access === 'admin' || r.access === 'supervisor');
    for (const route of guarded) {
      const callers = route.access === 'admin' ? [['user', mallory.token], ['supervisor', supervisor]] : [['user', mallory.token]];
      const path = fillPath(route.path, { userId: alice.id, modelId: MODEL });
      const body = route.method === 'get' ? undefined : exampleFor(route.request?.body, { userId: mallory.id, credits: 1, modelId: MODEL }, false);
      for (const [role, token] of callers) {
        // As declared (and HEAD for GET): exactly 403.
        const declared = [route.method.toUpperCase(), ...(route.method === 'get' ? ['HEAD'] : [])];
        for (const method of declared) {
          attempts++;
          const res = await api(hsUrl, token, method, path, body, { 'X-HTTP-Method-Override': 'GET', 'X-Role': 'admin' });
          if (res.status !== 403) failures.push(`${role} ${method} ${route.path}: ${res.status}`);
        }
        // Other methods and spellings of the same path: never a success.
        const variants = [path.toUpperCase(), `${path}/`, path.replace('/api/', '/api//'), path.replace('/api/', '/api/./'), path.replace(/\/([a-z])/, (_, c: string) => `/%${c.charCodeAt(0).toString(16)}`)];
        for (const method of ['GET', 'POST', 'PUT', 'PATCH', 'DELETE']) {
          for (const variant of [path, ...variants]) {
            attempts++;
            const res = await api(hsUrl, token, method, variant, method === 'GET' ? undefined : body ?? {});
            if (res.status < 300 || res.status >= 500) failures.push(`${role} ${method} ${variant}: ${res.status}`);
          }
        }
      }
    }
    expect(guarded.length).toBeGreaterThan(0);
    expect(failures).toEqual([]);
    const ledger = await checkLedger(cluster.pg, { url: hsUrl, adminToken: hs.sign({ sub: 's7-admin', role: 'admin' }) });
    expect(ledger.problems).toEqual([]);
    figure(`scenario 7d: function level: ${attempts} requests by user/supervisor to ${guarded.filter((r) => r.access === 'admin').length} admin and ${guarded.filter((r) => r.access === 'supervisor').length} supervisor routes (declared method, HEAD, other methods, path spellings): 403 as declared, never 2xx; reconcile ok`);
  });
});
