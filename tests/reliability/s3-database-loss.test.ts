import { checkLedger } from './harness/checks';
import { startCluster, type Cluster } from './harness/cluster';
import { figure } from './harness/figures';
import { api, call } from './harness/http';
import { runLoad, sleep, Tally, waitFor } from './harness/load';
import { SETTINGS } from './harness/settings';
import { tokenFor } from '../support/tokens';

/**
 * Scenario 3: PostgreSQL stops (fast shutdown, every connection cut) in the middle of load and comes back
 * a few seconds later. While it is down, requests must get 503 SERVICE_UNAVAILABLE (not 500, not a hang)
 * and /ready 503; afterwards the same processes, never restarted, must serve again; and every write the
 * service acknowledged (2xx) must be in the database.
 */
let cluster: Cluster;
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
  const acknowledged: string[] = [];
  const tally = new Tally();
  const downTally = new Tally();
  const readyWhileDown = new Tally();
  let phase: 'before' | 'down' | 'after' = 'before';
  let afterOk = 0;

  const load = runLoad({
    concurrency: 8,
    maxOperations: 100_000,
    maxDurationMs: 60_000,
    // After recovery, keep going until a couple of hundred more writes have been acknowledged.
    shouldStop: () => phase === 'after' && afterOk >= 200,
    operation: async (i) => {
      const s = cluster.services[i % cluster.services.length];
      const userId = `s3-user-${i}`;
      const started = phase;
      const res = tally.add(await api(s.url, tokenFor({ sub: userId }), 'GET', '/api/me'));
      if (started === 'down' && phase === 'down') downTally.add(res);
      if (res.status === 200) {
        acknowledged.push(userId);
        if (phase === 'after') afterOk++;
      }
      if (phase === 'down') await sleep(20);
    },
  });

  await waitFor('some acknowledged writes before the outage', () => acknowledged.length >= 100);
  await cluster.pg.pause();
  phase = 'down';
  const downSince = Date.now();
  while (Date.now() - downSince < DOWN_MS) {
    for (const s of cluster.services) readyWhileDown.add(await call(s.url, { path: '/ready', timeoutMs: 5_000 }));
    await sleep(250);
  }
  const sample503 = await api(cluster.services[0].url, tokenFor(), 'GET', '/api/me');
  await cluster.pg.resume();
  // Recovery: the same processes notice on their own; nobody restarts them.
  for (const s of cluster.services) await waitFor(`${s.options.name} ready again`, async () => (await call(s.url, { path: '/ready' })).status === 200, 30_000);
  phase = 'after';
  await load;

  // While down: only 503s (requests already past the database may still finish 200), and /ready said 503.
  expect(downTally.count((s) => s !== 503 && s !== 200)).toBe(0);
  expect(downTally.count((s) => s === 503)).toBeGreaterThan(0);
  expect(readyWhileDown.count((s) => s !== 503)).toBe(0);
  expect(sample503.status).toBe(503);
  expect(sample503.headers['retry-after']).toBeDefined();
  expect(sample503.json).toMatchObject({ error: { code: 'SERVICE_UNAVAILABLE', requestId: expect.any(String) } });
  expect(tally.count((s) => s !== 200 && s !== 503)).toBe(0);
  // The same processes, never restarted.
  expect(cluster.services.map((s) => s.pid)).toEqual(pids);
  for (const s of cluster.services) expect(s.alive).toBe(true);
  // Every acknowledged write is there.
  const rows = await cluster.pg.sql<{ id: string }>(`SELECT id FROM user_accounts WHERE id LIKE 's3-user-%'`);
  const stored = new Set(rows.map((r) => r.id));
  const lost = acknowledged.filter((id) => !stored.has(id));
  expect(lost).toEqual([]);
  const ledger = await checkLedger(cluster.pg);
  expect(ledger.problems).toEqual([]);

  figure(
    `scenario 3: database down ${DOWN_MS} ms under load: requests while down ${downTally.summary()}; /ready while down 503 in ${readyWhileDown.count((s) => s === 503)}/${readyWhileDown.total}; ` +
      `same ${cluster.services.length} processes recovered without restart; acknowledged writes ${acknowledged.length}, lost ${lost.length}; all requests ${tally.summary()}; 500s=0; reconcile ok`,
  );
});
