import fc from 'fast-check';
import type { ZodType } from 'zod';
import { STATUS_OF } from '../../src/lib/http-status';
import type { RouteSpec } from '../../src/routes/route-table';
import { checkLedger, moneySnapshot } from './harness/checks';
import { startCluster, type Cluster } from './harness/cluster';
import { figure } from './harness/figures';
import { call, type CallResult } from './harness/http';
import { initialize, MODEL } from './harness/ops';
import { exampleFor, fieldsOf, fillPath, loadRouteTable, paramNames } from './harness/routes';
import { SETTINGS } from './harness/settings';
import { tokenFor } from '../support/tokens';

/**
 * Scenario 6: hostile input. fast-check generates thousands of requests (bodies, query strings, path
 * parameters, headers, tokens) for every route in the service's own route table, starting from valid
 * requests and breaking them field by field. Oracles for every response:
 *   - never 5xx; every error in the API.md format with a code whose status matches; no stack trace, SQL
 *     or driver text anywhere in the body;
 *   - a 2xx body matches the response schema the route declares (and the OpenAPI document publishes);
 *   - a request that was refused (non-2xx) changed nothing: money tables are compared before and after
 *     each one (requests run one at a time, the sweeper is off, so any change is that request's).
 * Then raw-body attacks: malformed JSON, wrong content types, oversize and deeply nested bodies.
 */
const RUNS_PER_ROUTE = SETTINGS.fuzzRuns;
const SEED = SETTINGS.fuzzSeed;

let cluster: Cluster;
let url: string;
let routes: RouteSpec[];
const who = {
  user: { id: 'fuzz-user', token: tokenFor({ sub: 'fuzz-user', role: 'user' }) },
  supervisor: { id: 'fuzz-supervisor', token: tokenFor({ sub: 'fuzz-supervisor', role: 'supervisor' }) },
  admin: { id: 'fuzz-admin', token: tokenFor({ sub: 'fuzz-admin', role: 'admin' }) },
};

beforeAll(async () => {
  routes = await loadRouteTable();
  // One instance, requests one at a time, no background jobs: any database change belongs to the request just sent.
  cluster = await startCluster({ name: 's6', instances: 1, env: { SWEEPER_INTERVAL_MS: '0' } });
  url = cluster.services[0].url;
  for (const w of Object.values(who)) await call(url, { path: '/api/me', headers: { Authorization: `Bearer ${w.token}` } });
  // Credits to spend, so that a request wrongly let through would have something to change.
  for (const w of Object.values(who)) await cluster.pg.sql(`SELECT acct_grant($1, 1000000000, NULL, 'fuzz', NULL)`, [w.id]);
  // Open sessions for finalize/abort to aim at (admins may settle anyone's; others get 404 for foreign ones).
  for (const w of Object.values(who)) {
    for (let i = 0; i < 15; i++) {
      const sessionId = `fuzz-session-${w.id}-${i}`;
      const res = await initialize(url, w.token, { sessionId, estimatedCredits: 1 });
      if (res.status === 201) openSessions.push(sessionId);
    }
  }
});
afterAll(() => cluster?.stop());

// ---- oracles -------------------------------------------------------------------------------------

// A stack frame is `at fn (file:line:col)`; prose such as "effective at effectiveFrom (...)" in the OpenAPI text is not.
const LEAK = /\bat [\w.<>]+ \([^)]*:\d+:\d+\)|\.(?:js|ts):\d+|node_modules|Sequelize|SELECT |INSERT |UPDATE |DELETE FROM|syntax error|TypeError|ReferenceError|RangeError|SyntaxError|stack/i;
const stats = { requests: 0, byStatus: new Map<number, number>(), rejectedChecked: 0, accepted: 0 };

function problemsOf(res: CallResult, method: string): string[] {
  const problems: string[] = [];
  stats.requests++;
  stats.byStatus.set(res.status, (stats.byStatus.get(res.status) ?? 0) + 1);
  if (res.status === 0) return [`no response (${res.error})`];
  if (res.status >= 500) problems.push(`status ${res.status}`);
  if (LEAK.test(res.text)) problems.push(`leaks internals: ${res.text.slice(0, 300)}`);
  if (res.status >= 400 && method !== 'head' && res.status !== 431) {
    const body = res.json as { error?: Record<string, unknown> } | undefined;
    const error = body?.error;
    if (!error || Object.keys(body!).length !== 1) problems.push(`not the error format: ${res.text.slice(0, 200)}`);
    else {
      const code = error.code as keyof typeof STATUS_OF;
      if (!(code in STATUS_OF)) problems.push(`unknown error code ${String(code)}`);
      else if (STATUS_OF[code] !== res.status) problems.push(`code ${code} with status ${res.status}`);
      if (typeof error.message !== 'string' || typeof error.requestId !== 'string') problems.push(`error without message/requestId: ${res.text.slice(0, 200)}`);
      if (error.details !== undefined && (typeof error.details !== 'object' || error.details === null)) problems.push('details is not an object');
      const extra = Object.keys(error).filter((k) => !['code', 'message', 'details', 'requestId'].includes(k));
      if (extra.length) problems.push(`unexpected error fields ${extra.join(',')}`);
    }
  }
  return problems;
}

/** A 2xx JSON body must match the response schema the route declares (what the OpenAPI document promises). */
function contractProblem(route: RouteSpec | undefined, res: CallResult): string | null {
  const declared = route?.responses[res.status];
  if (!declared?.schema || declared.contentType || !String(res.headers['content-type'] ?? '').includes('json')) return null;
  const parsed = declared.schema.safeParse(res.json);
  return parsed.success ? null : `2xx body does not match the declared schema: ${JSON.stringify(parsed.error.issues.slice(0, 3))}`;
}

/** The declared route a path is routed to, if any: after URL dot-segment normalization (`/x/.` is `/x/`), trailing slash allowed as in Express. */
function routeMatching(method: string, path: string): RouteSpec | undefined {
  const pathOnly = new URL(path, 'http://127.0.0.1').pathname;
  return routes.find((r) => {
    if (r.method !== method) return false;
    const pattern = r.path.split('/').map((part) => (part.startsWith(':') ? '[^/]+' : part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))).join('/');
    return new RegExp(`^${pattern}/?$`).test(pathOnly);
  });
}

/** Sends one request; if it was refused, the money tables must be exactly as before. */
async function sendAndCheck(method: string, path: string, headers: Record<string, string>, body: string | Buffer | undefined, route?: RouteSpec): Promise<string[]> {
  const before = await moneySnapshot(cluster.pg);
  const res = await call(url, { method: method.toUpperCase(), path, headers, body, timeoutMs: 15_000 });
  const problems = problemsOf(res, method);
  if (res.status >= 200 && res.status < 300) {
    const contract = contractProblem(route, res);
    if (contract) problems.push(contract);
  }
  if (res.status >= 400 || res.status === 0) {
    const after = await moneySnapshot(cluster.pg);
    stats.rejectedChecked++;
    const changed = Object.keys(before).filter((k) => before[k] !== after[k]);
    if (changed.length) problems.push(`refused with ${res.status} but changed ${changed.map((k) => `${k} ${before[k]}->${after[k]}`).join(', ')}`);
  } else stats.accepted++;
  return problems.map((p) => `${method.toUpperCase()} ${path} -> ${res.status}: ${p}`);
}

// ---- generators ----------------------------------------------------------------------------------

const hostileString = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.constantFrom('', ' ', '0', '-1', '1e3', '1e400', '0x10', 'NaN', 'Infinity', '-0', '00.1', '1.0000001', '1,5', '١٢٣', '12.', '.5',
    '999999999999999999999999', '1000000000.000001', 'null', 'true', '[]', '{}', "'; DROP TABLE credit_allocations; --", '\u0000', '%00', '../../etc/passwd',
    '<script>alert(1)</script>', '${7*7}', '{{7*7}}', 'gpt-4o', 'fuzz-user', 'fuzz-admin', '__proto__', 'constructor', 'a'.repeat(300), 'x'.repeat(5000)),
);
const hostileNumber = fc.oneof(
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.constantFrom(0, -0, -1, 1, 0.1, 0.000001, 0.0000001, 1e9, 1e9 + 0.000001, 1e9 + 1, 2 ** 53, 2 ** 53 + 1, 1e21, 1e308, -1e308, 5e-324, 1_000_000_000_000, 1_000_000_000_001),
);
const hostileScalar = fc.oneof(hostileString, hostileNumber, fc.boolean(), fc.constant(null));
const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 6, arbitrary: hostileScalar },
  { weight: 1, arbitrary: fc.array(hostileScalar, { maxLength: 4 }) },
  { weight: 1, arbitrary: fc.dictionary(fc.string({ maxLength: 8 }), hostileScalar, { maxKeys: 3 }) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
);
const dangerousKey = fc.constantFrom('__proto__', 'constructor', 'prototype', 'role', 'userId', 'allocatedBy', 'remainingCredits', 'status', 'id', '$where', '');

/**
 * Requests that pass validation, per route, so that most generated requests are one or two mutations away
 * from reaching the service. Routes not listed here (added later) get a body built from their schema.
 */
const openSessions: string[] = [];
function validBodies(route: RouteSpec): fc.Arbitrary<Record<string, unknown>> {
  const session = () => (openSessions.length ? fc.constantFrom(...openSessions) : fc.constant('none'));
  const tokens = fc.integer({ min: 0, max: 100_000 });
  switch (`${route.method} ${route.path}`) {
    case 'post /api/credits/check':
      return fc.oneof(fc.record({ credits: fc.constantFrom(1, '0.5') }), fc.record({ modelId: fc.constant(MODEL), inputTokens: tokens, outputTokens: tokens }));
    case 'post /api/credits/calculate':
      return fc.record({ modelId: fc.constant(MODEL), inputTokens: tokens, outputTokens: tokens });
    case 'post /api/credits/allocate':
      return fc.record({ userId: fc.constantFrom('fuzz-user', 'fuzz-admin'), credits: fc.constantFrom(1, '0.25') });
    case 'put /api/models/:modelId':
      return fc.record({ inputPricePer1M: fc.integer({ min: 0, max: 100 }), outputPricePer1M: fc.integer({ min: 0, max: 100 }) });
    case 'post /api/streaming-sessions/initialize':
      return fc.oneof(
        fc.record({ sessionId: fc.uuid(), modelId: fc.constant(MODEL), estimatedInputTokens: tokens, estimatedOutputTokens: tokens }),
        fc.record({ modelId: fc.constant(MODEL), estimatedCredits: fc.constantFrom(1, '0.5') }),
      );
    case 'post /api/streaming-sessions/finalize':
      return fc.record({ sessionId: session(), actualInputTokens: tokens, actualOutputTokens: tokens });
    case 'post /api/streaming-sessions/abort':
      return fc.record({ sessionId: session() });
    case 'post /api/usage/record':
      return fc.oneof(
        fc.record({ service: fc.constant('chat'), operation: fc.constant('completion'), credits: fc.constantFrom(1, '0.001') }),
        fc.record({ service: fc.constant('chat'), operation: fc.constant('completion'), modelId: fc.constant(MODEL), inputTokens: tokens, outputTokens: tokens }),
      );
    default:
      return fc.constant(exampleFor(route.request?.body, { userId: 'fuzz-user', modelId: MODEL, credits: 1, service: 'chat', operation: 'completion' }, false));
  }
}

/** A body for a route: valid, or valid with fields broken, dropped, added, or something else entirely. */
function bodyArbitrary(route: RouteSpec): fc.Arbitrary<unknown> {
  const valid = validBodies(route);
  const names = Object.keys(fieldsOf(route.request?.body));
  const broken = fc
    .record({
      base: valid,
      mutations: fc.array(fc.tuple(fc.constantFrom(...(names.length ? names : ['x'])), fc.option(hostileValue, { nil: undefined })), { minLength: 1, maxLength: 3 }),
      extra: fc.option(fc.tuple(dangerousKey, hostileValue), { nil: undefined }),
    })
    .map(({ base, mutations, extra }) => {
      const out: Record<string, unknown> = { ...base };
      for (const [name, value] of mutations) {
        if (value === undefined) delete out[name];
        else out[name] = value;
      }
      if (extra) out[extra[0]] = extra[1];
      return out;
    });
  return fc.oneof(
    { weight: 3, arbitrary: valid },
    { weight: 5, arbitrary: broken },
    { weight: 1, arbitrary: hostileValue },
    { weight: 1, arbitrary: fc.constant(JSON.parse('{"__proto__": {"role": "admin", "isAdmin": true}, "constructor": {"prototype": {"x": 1}}}')) },
  );
}

function queryArbitrary(schema: ZodType | undefined): fc.Arbitrary<string> {
  const names = [...Object.keys(fieldsOf(schema)), 'limit', 'cursor', 'userId', 'from', 'to', 'format', 'role'];
  const pair = fc.tuple(fc.oneof(fc.constantFrom(...names), fc.string({ maxLength: 6 })), fc.oneof(hostileString, hostileNumber.map(String)));
  return fc.array(pair, { maxLength: 4 }).map((pairs) => pairs.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&'));
}

const paramArbitrary = fc.oneof(hostileString, fc.constantFrom('fuzz-user', 'fuzz-admin', 'nobody', MODEL, 'gpt-4o', '%2e%2e', '..', '.', 'a/b', ' '));

// Mostly authenticated JSON, so that most requests get past authentication and parsing into validation
// and the services; the rest probe the outer layers.
const headersArbitrary = fc.record({
  token: fc.oneof(
    { weight: 8, arbitrary: fc.constantFrom('user', 'supervisor', 'admin') },
    { weight: 1, arbitrary: fc.constantFrom('none', 'garbage') },
  ),
  contentType: fc.oneof(
    { weight: 8, arbitrary: fc.constant('application/json') },
    {
      weight: 2,
      arbitrary: fc.constantFrom('application/json; charset=utf-8', 'application/json; charset=latin1', 'text/plain', 'application/x-www-form-urlencoded',
        'multipart/form-data; boundary=x', 'application/json-patch+json', undefined),
    },
  ),
  idempotencyKey: fc.oneof(
    { weight: 6, arbitrary: fc.constant(undefined) },
    { weight: 3, arbitrary: fc.uuid() },
    { weight: 1, arbitrary: fc.oneof(fc.string({ unit: fc.constantFrom(...'abcXYZ019-_ ~!'.split('')), maxLength: 300 }), fc.constant('')) },
  ),
  requestId: fc.option(fc.string({ unit: fc.constantFrom(...'ab0-_:.x/ '.split('')), maxLength: 200 }), { nil: undefined, freq: 2 }),
});

function headersFor(h: { token: string; contentType?: string; idempotencyKey?: string; requestId?: string }, hasBody: boolean): Record<string, string> {
  const out: Record<string, string> = {};
  if (h.token === 'garbage') out.Authorization = 'Bearer e30.e30.';
  else if (h.token !== 'none') out.Authorization = `Bearer ${who[h.token as keyof typeof who].token}`;
  if (hasBody && h.contentType) out['Content-Type'] = h.contentType;
  if (h.idempotencyKey !== undefined) out['Idempotency-Key'] = h.idempotencyKey;
  if (h.requestId !== undefined) out['X-Request-Id'] = h.requestId;
  return out;
}

// ---- the runs ------------------------------------------------------------------------------------

describe('scenario 6: hostile input', () => {
  test('When thousands of generated requests hit every route, then no 5xx, every error is in the API format, and refused requests change nothing', async () => {
    const failures: string[] = [];
    for (const route of routes) {
      const method = route.method;
      const hasBody = method !== 'get';
      const arbitrary = fc.record({
        params: fc.dictionary(fc.constantFrom(...(paramNames(route.path).length ? paramNames(route.path) : ['none'])), paramArbitrary),
        query: queryArbitrary(route.request?.query),
        body: hasBody ? bodyArbitrary(route) : fc.constant(undefined),
        headers: headersArbitrary,
      });
      await fc.assert(
        fc.asyncProperty(arbitrary, async ({ params, query, body, headers }) => {
          const filled = fillPath(route.path, params);
          const path = filled + (query ? `?${query}` : '');
          // An empty or `.` last param turns /api/webhooks/:id into /api/webhooks/, which is another route (the list):
          // the answer is checked against the route that actually matches.
          const target = routeMatching(method, filled) ?? route;
          const problems = await sendAndCheck(method, path, headersFor(headers, hasBody), body === undefined ? undefined : JSON.stringify(body), target);
          if (problems.length) failures.push(...problems);
          return problems.length === 0;
        }),
        { numRuns: RUNS_PER_ROUTE, seed: SEED, endOnFailure: true },
      ).catch((error: Error) => failures.push(`${route.method.toUpperCase()} ${route.path}: ${error.message.split('\n').slice(0, 6).join(' | ')}`));
    }

    // Paths that are not routes at all, with every method.
    await fc.assert(
      fc.asyncProperty(fc.constantFrom('get', 'post', 'put', 'delete', 'patch'), fc.array(paramArbitrary, { minLength: 1, maxLength: 4 }), async (method, segments) => {
        const path = '/api/' + segments.map(encodeURIComponent).join('/');
        const problems = await sendAndCheck(method, path, { Authorization: `Bearer ${who.admin.token}`, 'Content-Type': 'application/json' }, method === 'get' ? undefined : '{}');
        failures.push(...problems);
        return problems.length === 0;
      }),
      { numRuns: RUNS_PER_ROUTE, seed: SEED, endOnFailure: true },
    ).catch((error: Error) => failures.push(`unknown paths: ${error.message.split('\n').slice(0, 6).join(' | ')}`));

    expect(failures.slice(0, 20)).toEqual([]);
    expect(stats.requests).toBeGreaterThanOrEqual(RUNS_PER_ROUTE * routes.length);
    figure(
      `scenario 6a: fuzzed ${stats.requests} requests over ${routes.length} routes + unknown paths (seed ${SEED}): ` +
        `${[...stats.byStatus.entries()].sort(([a], [b]) => a - b).map(([s, c]) => `${s}:${c}`).join(' ')}; 5xx=0; ` +
        `refused requests checked for database changes ${stats.rejectedChecked}, changed 0`,
    );
  });

  test('When bodies are malformed, mistyped, oversize or absurdly nested, then each gets a 4xx in the error format and nothing changes', async () => {
    const auth = { Authorization: `Bearer ${who.admin.token}` };
    const bodyRoutes = routes.filter((r) => r.method !== 'get');
    const targets = bodyRoutes.length ? bodyRoutes.map((r) => fillPath(r.path, {})) : ['/api/me'];
    const cases: Array<[string, Record<string, string>, string | Buffer]> = [
      ['truncated JSON', { 'Content-Type': 'application/json' }, '{"credits": 5'],
      ['single quotes', { 'Content-Type': 'application/json' }, "{'credits': 5}"],
      ['trailing comma', { 'Content-Type': 'application/json' }, '{"credits": 5,}'],
      ['NaN literal', { 'Content-Type': 'application/json' }, '{"credits": NaN}'],
      ['bare string (strict mode)', { 'Content-Type': 'application/json' }, '"hello"'],
      ['bare number', { 'Content-Type': 'application/json' }, '42'],
      ['null', { 'Content-Type': 'application/json' }, 'null'],
      ['array', { 'Content-Type': 'application/json' }, '[1,2,3]'],
      ['BOM prefix', { 'Content-Type': 'application/json' }, '\ufeff{"credits": 5}'],
      ['invalid UTF-8', { 'Content-Type': 'application/json' }, Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d])],
      ['utf-16 charset', { 'Content-Type': 'application/json; charset=utf-16' }, '{"credits": 5}'],
      ['unknown charset', { 'Content-Type': 'application/json; charset=klingon' }, '{"credits": 5}'],
      ['gzip encoding, not gzipped', { 'Content-Type': 'application/json', 'Content-Encoding': 'gzip' }, '{"credits": 5}'],
      ['unknown encoding', { 'Content-Type': 'application/json', 'Content-Encoding': 'br2' }, '{"credits": 5}'],
      ['text/plain', { 'Content-Type': 'text/plain' }, '{"credits": 5}'],
      ['form encoded', { 'Content-Type': 'application/x-www-form-urlencoded' }, 'credits=5&userId=fuzz-user'],
      ['multipart', { 'Content-Type': 'multipart/form-data; boundary=x' }, '--x\r\nContent-Disposition: form-data; name="credits"\r\n\r\n5\r\n--x--'],
      ['xml', { 'Content-Type': 'application/xml' }, '<credits>5</credits>'],
      ['no content type', {}, '{"credits": 5}'],
      ['oversize (200 KB)', { 'Content-Type': 'application/json' }, JSON.stringify({ note: 'x'.repeat(200_000) })],
      ['deeply nested arrays (40k levels)', { 'Content-Type': 'application/json' }, '['.repeat(40_000) + ']'.repeat(40_000)],
      ['deeply nested objects (20k levels)', { 'Content-Type': 'application/json' }, '{"a":'.repeat(20_000) + '1' + '}'.repeat(20_000)],
      ['many keys (5k)', { 'Content-Type': 'application/json' }, JSON.stringify(Object.fromEntries(Array.from({ length: 5000 }, (_, i) => [`k${i}`, i])))],
      ['duplicate keys', { 'Content-Type': 'application/json' }, '{"credits": 1, "credits": -5}'],
    ];
    const failures: string[] = [];
    for (const target of targets) {
      const route = bodyRoutes.find((r) => fillPath(r.path, {}) === target);
      const method = route?.method ?? 'post';
      for (const [name, headers, body] of cases) {
        const problems = await sendAndCheck(method, target, { ...auth, ...headers }, body);
        failures.push(...problems.map((p) => `${name}: ${p}`));
      }
    }
    expect(failures).toEqual([]);
    expect((await call(url, { path: '/health' })).status).toBe(200);
    const ledger = await checkLedger(cluster.pg, { url, adminToken: who.admin.token });
    expect(ledger.problems).toEqual([]);
    figure(`scenario 6b: ${cases.length} malformed/mistyped/oversize/nested bodies x ${targets.length} body routes: all 4xx in the error format, 5xx=0, database unchanged; reconcile ok`);
  });
});
