import net from 'node:net';
import { checkLedger } from './harness/checks';
import { startCluster, type Cluster } from './harness/cluster';
import { figure } from './harness/figures';
import { api, call } from './harness/http';
import { Tally } from './harness/load';
import { allocate, recordUsage } from './harness/ops';
import { fieldsOf, fillPath, loadRouteTable } from './harness/routes';
import { tokenFor } from '../support/tokens';

/**
 * Scenario 8: resource limits. Slow clients are cut by the server's own timeouts; a pool exhausted by
 * requests stuck behind row locks answers 503 quickly instead of queueing forever; oversize headers and
 * bodies are refused; browsers from unknown origins get no CORS grant.
 */
let cluster: Cluster;
const ALLOWED_ORIGIN = 'https://app.example.test';
const HEADERS_TIMEOUT_MS = 1_000;
const REQUEST_TIMEOUT_MS = 2_000;

beforeAll(async () => {
  cluster = await startCluster({
    name: 's8',
    instances: 1,
    env: {
      HTTP_HEADERS_TIMEOUT_MS: String(HEADERS_TIMEOUT_MS),
      HTTP_REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS),
      CORS_ORIGINS: ALLOWED_ORIGIN,
      USER_CACHE_TTL_MS: '0',
      DATABASE_POOL_MAX: '2',
      DB_ACQUIRE_TIMEOUT_MS: '500',
      DB_LOCK_TIMEOUT_MS: '8000',
      DB_STATEMENT_TIMEOUT_MS: '15000',
      BODY_LIMIT: '10kb',
    },
  });
});
afterAll(() => cluster?.stop());

const url = () => cluster.services[0].url;

/** Opens a raw socket, writes `chunks` with `gapMs` between them, resolves with what happened. */
function slowClient(chunks: string[], gapMs: number, giveUpMs = 15_000): Promise<{ closedAfterMs: number; response: string; closedByServer: boolean }> {
  return new Promise((resolve) => {
    const started = Date.now();
    const socket = net.connect(cluster.services[0].port, '127.0.0.1');
    let response = '';
    let i = 0;
    let done = false;
    const finish = (closedByServer: boolean) => {
      if (done) return;
      done = true;
      clearInterval(timer);
      clearTimeout(giveUp);
      socket.destroy();
      resolve({ closedAfterMs: Date.now() - started, response, closedByServer });
    };
    const timer = setInterval(() => {
      if (i < chunks.length && !socket.destroyed) socket.write(chunks[i++]);
    }, gapMs);
    const giveUp = setTimeout(() => finish(false), giveUpMs);
    socket.on('data', (d) => (response += d.toString()));
    socket.on('close', () => finish(true));
    socket.on('error', () => finish(true));
  });
}

describe('scenario 8: resource limits', () => {
  test('When a client trickles its headers (slowloris), then the server cuts it after the headers timeout', async () => {
    const headerBytes = `GET /health HTTP/1.1\r\nHost: localhost\r\n`.split('').concat(['X-Slow: 1\r\n']);
    const result = await slowClient(headerBytes, 300);
    expect(result.closedByServer).toBe(true);
    expect(result.response === '' || result.response.startsWith('HTTP/1.1 408')).toBe(true);
    // The service is unaffected.
    expect((await call(url(), { path: '/health' })).status).toBe(200);
    figure(`scenario 8a: slowloris headers cut by the server after ${result.closedAfterMs} ms (HTTP_HEADERS_TIMEOUT_MS=${HEADERS_TIMEOUT_MS}), response "${result.response.split('\r\n')[0] || 'closed'}"`);
  });

  test('When a client trickles its body, then the server cuts it after the request timeout', async () => {
    const token = tokenFor();
    const head = `POST /api/me HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n`;
    const result = await slowClient([head, ...'{"a":"'.split(''), ...'x'.repeat(60).split('')], 200);
    expect(result.closedByServer).toBe(true);
    expect(result.response === '' || result.response.startsWith('HTTP/1.1 408')).toBe(true);
    expect((await call(url(), { path: '/health' })).status).toBe(200);
    figure(`scenario 8b: slow body cut by the server after ${result.closedAfterMs} ms (HTTP_REQUEST_TIMEOUT_MS=${REQUEST_TIMEOUT_MS}), response "${result.response.split('\r\n')[0] || 'closed'}"`);
  });

  test('When requests stuck on a locked row exhaust the pool, then others get 503 quickly, nothing hangs, and service resumes when the lock goes', async () => {
    const stuckUser = 's8-stuck';
    await api(url(), tokenFor({ sub: stuckUser, email: 'a@example.test' }), 'GET', '/api/me');
    // Hold the user's row lock from outside, as a long money transaction would.
    const locker = await cluster.pg.client();
    await locker.query('BEGIN');
    await locker.query(`SELECT 1 FROM user_accounts WHERE id = $1 FOR UPDATE`, [stuckUser]);
    const tally = new Tally();
    let others: Tally;
    try {
      // A changed email forces a write to the locked row: these requests wait on the lock, holding connections.
      const stuck = Array.from({ length: 2 }, (_, i) => api(url(), tokenFor({ sub: stuckUser, email: `b${i}@example.test` }), 'GET', '/api/me'));
      await new Promise((r) => setTimeout(r, 300));
      // Everyone else now finds the pool exhausted.
      others = new Tally();
      const results = await Promise.all(Array.from({ length: 30 }, () => call(url(), { path: '/api/me', headers: { Authorization: `Bearer ${tokenFor()}` }, timeoutMs: 10_000 })));
      results.forEach((r) => others.add(r));
      expect((await call(url(), { path: '/health' })).status).toBe(200);
      await locker.query('ROLLBACK');
      (await Promise.all(stuck)).forEach((r) => tally.add(r));
    } finally {
      await locker.end().catch(() => undefined);
    }
    // No hang (status 0 would be our 10 s client timeout), no 500: 503 with the error format.
    expect(others.count((s) => s !== 503 && s !== 200)).toBe(0);
    expect(others.count((s) => s === 503)).toBeGreaterThan(0);
    expect(tally.count((s) => s !== 200 && s !== 503)).toBe(0);
    const after = await api(url(), tokenFor(), 'GET', '/api/me');
    expect(after.status).toBe(200);
    expect(cluster.services[0].alive).toBe(true);
    figure(`scenario 8c: pool of 2 held by lock-blocked requests: 30 other requests answered ${others.summary()} (acquire timeout 500 ms, none hung); blocked ones ${tally.summary()}; next request 200`);
  });

  test('When headers or bodies are oversize, then they are refused without harm', async () => {
    const bigHeader = await call(url(), { path: '/api/me', headers: { 'X-Big': 'x'.repeat(20_000) } });
    expect(bigHeader.status).toBe(431);
    // Refused by Node's parser before Express, yet in the API's error format.
    expect(bigHeader.json).toMatchObject({ error: { code: 'HEADERS_TOO_LARGE', message: expect.any(String), details: {}, requestId: expect.any(String) } });
    const malformed = await slowClient(['GET /health HTTP/1.1\r\nHost: localhost\r\nNot a header line\r\n\r\n'], 10);
    expect(malformed.response.split('\r\n')[0]).toBe('HTTP/1.1 400 Bad Request');
    expect(JSON.parse(malformed.response.split('\r\n\r\n')[1])).toMatchObject({ error: { code: 'VALIDATION_ERROR', message: 'The request is not valid HTTP' } });
    const bigBody = await call(url(), {
      method: 'POST',
      path: '/api/me',
      headers: { Authorization: `Bearer ${tokenFor()}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ note: 'x'.repeat(50_000) }),
    });
    expect(bigBody.status).toBe(413);
    expect(bigBody.json).toMatchObject({ error: { code: 'PAYLOAD_TOO_LARGE' } });
    expect((await call(url(), { path: '/health' })).status).toBe(200);
    figure(`scenario 8d: 20 KB header -> ${bigHeader.status} HEADERS_TOO_LARGE; malformed header line -> 400 VALIDATION_ERROR; 50 KB body over a 10 KB limit -> ${bigBody.status} PAYLOAD_TOO_LARGE`);
  });

  test('When lists are asked for too much, then limits are capped at 500, default to 50, and cursors page through everything once', async () => {
    const routes = (await loadRouteTable()).filter((r) => r.method === 'get' && 'limit' in fieldsOf(r.request?.query));
    const admin = tokenFor({ sub: 's8-admin', role: 'admin' });
    const owner = { id: 's8-lister', token: tokenFor({ sub: 's8-lister' }) };
    expect((await allocate(url(), tokenFor({ sub: 's8-sup', role: 'supervisor' }), { userId: owner.id, credits: 1000 })).status).toBe(201);
    // 120 usage records (and 120 charge rows in the ledger): more than one default page, fewer than the cap.
    for (let i = 0; i < 120; i++) expect((await recordUsage(url(), owner.token, { service: 'chat', operation: 'completion', credits: 0.01 })).status).toBe(201);

    // A webhook endpoint (disabled at once, so nothing is ever sent) gives /api/webhooks/:id/deliveries an id.
    const hook = await api(url(), admin, 'POST', '/api/webhooks', { url: 'https://hooks.example.com/s8', events: ['*'] });
    expect(hook.status).toBe(201);
    const hookId = (hook.json as { id: string }).id;
    expect((await api(url(), admin, 'PATCH', `/api/webhooks/${hookId}`, { enabled: false })).status).toBe(200);
    const supervisor = tokenFor({ sub: 's8-sup', role: 'supervisor' });
    const failures: string[] = [];
    for (const route of routes) {
      const token = route.access === 'admin' ? admin : route.access === 'supervisor' ? supervisor : owner.token;
      const path = fillPath(route.path, { id: hookId, userId: owner.id, modelId: 'gpt-4o' });
      for (const bad of ['501', '100000', '0', '-1', '1.5', 'abc', '1e3', '']) {
        const res = await api(url(), token, 'GET', `${path}?limit=${encodeURIComponent(bad)}`);
        if (res.status !== 400 && !(bad === '' && res.status === 200)) failures.push(`${route.path}?limit=${bad}: ${res.status}`);
      }
      const max = await api(url(), token, 'GET', `${path}?limit=500`);
      const maxData = (max.json as { data?: unknown[] })?.data;
      if (max.status !== 200 || !Array.isArray(maxData) || maxData.length > 500) failures.push(`${route.path}?limit=500: ${max.status}`);
      const first = await api(url(), token, 'GET', path);
      const data = (first.json as { data?: unknown[] })?.data ?? [];
      if (first.status !== 200 || data.length > 50) failures.push(`${route.path} default page: ${first.status}, ${data.length} items`);
    }
    // Paging through the owner's records with the cursor returns each exactly once.
    const seen = new Set<string>();
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res = await api(url(), owner.token, 'GET', `/api/usage/records?limit=50${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      const body = res.json as { data: Array<{ id: string }>; nextCursor: string | null };
      for (const r of body.data) {
        if (seen.has(r.id)) failures.push(`record ${r.id} twice`);
        seen.add(r.id);
      }
      cursor = body.nextCursor;
      pages++;
    } while (cursor && pages < 10);
    const forged = await api(url(), owner.token, 'GET', `/api/usage/records?cursor=${Buffer.from('{"x":1}').toString('base64url')}`);
    expect(failures).toEqual([]);
    expect(seen.size).toBe(120);
    expect(forged.status).toBe(400);
    figure(`scenario 8f: ${routes.length} list routes: limit over 500, 0, negative, fractional or text -> 400; limit=500 and the default (<= 50) honoured; 120 records paged by cursor in ${pages} pages, each once; forged cursor -> 400`);
  });

  test('When a browser from an unknown origin asks, then CORS grants nothing; the configured origin is granted', async () => {
    const evil = await call(url(), { path: '/api/me', headers: { Origin: 'https://evil.example' } });
    const evilPreflight = await call(url(), {
      method: 'OPTIONS',
      path: '/api/credits/allocate',
      headers: { Origin: 'https://evil.example', 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'authorization,content-type' },
    });
    const good = await call(url(), {
      method: 'OPTIONS',
      path: '/api/credits/allocate',
      headers: { Origin: ALLOWED_ORIGIN, 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'authorization,content-type' },
    });
    expect(evil.headers['access-control-allow-origin']).toBeUndefined();
    expect(evilPreflight.headers['access-control-allow-origin']).toBeUndefined();
    expect(evil.headers['access-control-allow-credentials']).toBeUndefined();
    expect(good.headers['access-control-allow-origin']).toBe(ALLOWED_ORIGIN);
    const ledger = await checkLedger(cluster.pg, { url: url(), adminToken: tokenFor({ sub: 's8-admin', role: 'admin' }) });
    expect(ledger.problems).toEqual([]);
    figure(`scenario 8e: CORS unknown origin -> no Access-Control-Allow-Origin (simple and preflight); ${ALLOWED_ORIGIN} -> granted`);
  });
});
