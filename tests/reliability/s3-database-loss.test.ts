import { READY_CACHE_MS } from '../../src/controllers/health.controller';
import { checkLedger } from './harness/checks';
import { startCluster, type Cluster } from './harness/cluster';
import { figure } from './harness/figures';
import { api, call, type CallResult } from './harness/http';
import { runLoad, sleep, Tally, waitFor } from './harness/load';
import { allocate, initialize, recordUsage } from './harness/ops';
import { SETTINGS } from './harness/settings';
import { tokenFor } from '../support/tokens';

/**
 * Scenario 3: PostgreSQL stops (fast shutdown, every connection cut) in the middle of load and comes back
 * a few seconds later. While it is down, requests must get 503 SERVICE_UNAVAILABLE (not 500, not a hang)
 * and /ready 503; afterwards the same processes, never restarted, must serve again; and every write the
 * service acknowledged (2xx) must be in the database.
 */
let cluster: Cluster;
const supervisor = tokenFor({ sub: 's3-supervisor', role: 'supervisor', expiresIn: '2h' });
const payer = { id: 's3-payer', token: tokenFor({ sub: 's3-payer', expiresIn: '2h' }) };
const DOWN_MS = SETTINGS.dbDownMs;

beforeAll(async () => {
  cluster = await startCluster({
    name: 's3',
    instances: 2,
    // Every /api/me writes (no user cache); a request waits at most 1 s for a connection.
    env: { USER_CACHE_TTL_MS: '0', DB_ACQUIRE_TIMEOUT_MS: '1000' },
  });
});
afterAll(() => cluster?.stop());

test('When the database stops mid-load and restarts, then requests get 503 meanwhile, the same processes recover, and nothing acknowledged is lost', async () => {
  const pids = cluster.services.map((s) => s.pid);
  const acknowledged: Array<{ kind: 'user' | 'usage' | 'allocation' | 'session'; id: string }> = [];
  const tally = new Tally();
  const downTally = new Tally();
  const readyWhileDown = new Tally();
  let phase: 'before' | 'down' | 'after' = 'before';
  let afterOk = 0;
  expect((await allocate(cluster.services[0].url, supervisor, { userId: payer.id, credits: 10_000 })).status).toBe(201);

  // Four kinds of acknowledged write, each traceable by its own id: a user mirrored from a new token, a
  // usage record (Idempotency-Key), an allocation (Idempotency-Key) and a streaming session (sessionId).
  const write = (i: number, url: string): [Promise<CallResult>, (typeof acknowledged)[number]] => {
    const id = `s3-${i}`;
    switch (i % 4) {
      case 0:
        return [api(url, tokenFor({ sub: id }), 'GET', '/api/me'), { kind: 'user', id }];
      case 1:
        return [recordUsage(url, payer.token, { service: 'chat', operation: 'completion', credits: 0.01, metadata: { op: id } }, id), { kind: 'usage', id }];
      case 2:
        return [allocate(url, supervisor, { userId: payer.id, credits: 1, note: id }, id), { kind: 'allocation', id }];
      default:
        return [initialize(url, payer.token, { sessionId: id, estimatedCredits: 0.01 }), { kind: 'session', id }];
    }
  };

  const load = runLoad({
    concurrency: 8,
    maxOperations: 100_000,
    maxDurationMs: 60_000,
    // After recovery, keep going until a couple of hundred more writes have been acknowledged.
    shouldStop: () => phase === 'after' && afterOk >= 200,
    operation: async (i) => {
      const s = cluster.services[i % cluster.services.length];
      const started = phase;
      const [pending, what] = write(i, s.url);
      const res = tally.add(await pending);
      if (started === 'down' && phase === 'down') downTally.add(res);
      if (res.status >= 200 && res.status < 300) {
        acknowledged.push(what);
        if (phase === 'after') afterOk++;
      }
      if (phase === 'down') await sleep(20);
    },
  });

  await waitFor('some acknowledged writes before the outage', () => acknowledged.length >= 100);
  expect(cluster.services.map((s) => s.pid)).toEqual(pids);
  await cluster.pg.pause();
  phase = 'down';
  const downSince = Date.now();
  while (Date.now() - downSince < DOWN_MS) {
    // /ready reuses its last database check for READY_CACHE_MS (a flood of probes costs one query), so it may
    // still say 200 for that long after the outage began: count only what it says after that.
    const settled = Date.now() - downSince > READY_CACHE_MS + 100;
    for (const s of cluster.services) {
      const res = await call(s.url, { path: '/ready', timeoutMs: 5_000 });
      if (settled) readyWhileDown.add(res);
    }
    await sleep(250);
  }
  const sample503 = await api(cluster.services[0].url, tokenFor(), 'GET', '/api/me');
  await cluster.pg.resume();
  // Recovery: the same processes notice on their own; nobody restarts them.
  for (const s of cluster.services) await waitFor(`${s.options.name} ready again`, async () => (await call(s.url, { path: '/ready' })).status === 200, 30_000);
  phase = 'after';
  await load;

  // While down: only 503s (requests already past the database may still finish 2xx), and /ready said 503.
  const ok = (s: number) => s >= 200 && s < 300;
  expect(downTally.count((s) => s !== 503 && !ok(s))).toBe(0);
  expect(downTally.count((s) => s === 503)).toBeGreaterThan(0);
  expect(readyWhileDown.total).toBeGreaterThan(0);
  expect(readyWhileDown.count((s) => s !== 503)).toBe(0);
  expect(sample503.status).toBe(503);
  expect(sample503.headers['retry-after']).toBeDefined();
  expect(sample503.json).toMatchObject({ error: { code: 'SERVICE_UNAVAILABLE', requestId: expect.any(String) } });
  expect(tally.count((s) => s !== 503 && !ok(s))).toBe(0);
  // The same processes, never restarted.
  expect(cluster.services.map((s) => s.pid)).toEqual(pids);
  for (const s of cluster.services) expect(s.alive).toBe(true);
  // Every acknowledged write is there, exactly once.
  const [stored] = await cluster.pg.sql<{ users: string[]; usage: string[]; allocations: string[]; sessions: string[] }>(
    `SELECT (SELECT coalesce(array_agg(id), '{}') FROM user_accounts WHERE id LIKE 's3-%') AS users,
            (SELECT coalesce(array_agg(metadata->>'op'), '{}') FROM usage_records WHERE user_id = $1) AS usage,
            (SELECT coalesce(array_agg(note), '{}') FROM credit_allocations WHERE note LIKE 's3-%') AS allocations,
            (SELECT coalesce(array_agg(id), '{}') FROM streaming_sessions WHERE user_id = $1) AS sessions`,
    [payer.id],
  );
  const count = (list: string[]) => list.reduce((m, id) => m.set(id, (m.get(id) ?? 0) + 1), new Map<string, number>());
  const found = { user: count(stored.users), usage: count(stored.usage), allocation: count(stored.allocations), session: count(stored.sessions) };
  const lost = acknowledged.filter((a) => found[a.kind].get(a.id) !== 1);
  expect(lost).toEqual([]);
  const ledger = await checkLedger(cluster.pg, { url: cluster.services[0].url, adminToken: tokenFor({ sub: 's3-admin', role: 'admin' }) });
  expect(ledger.problems).toEqual([]);

  figure(
    `scenario 3: database down ${DOWN_MS} ms under load: requests while down ${downTally.summary()}; /ready while down 503 in ${readyWhileDown.count((s) => s === 503)}/${readyWhileDown.total}; ` +
      `same ${cluster.services.length} processes recovered without restart; acknowledged writes (users, usage records, allocations, sessions) ${acknowledged.length}, lost or doubled ${lost.length}; all requests ${tally.summary()}; 500s=0; reconcile ok`,
  );
});
