import { checkLedger } from './harness/checks';
import { startCluster, type Cluster } from './harness/cluster';
import { figure } from './harness/figures';
import { api, call } from './harness/http';
import { runLoad, sleep, Tally } from './harness/load';
import { tokenFor } from '../support/tokens';

/**
 * Scenario 4: the database terminates the service's pooled connections (pg_terminate_backend, as a
 * failover, an idle-connection reaper or an operator would). The process must survive the `error` event
 * on an idle client, and the very next request must succeed on a fresh connection.
 */
let cluster: Cluster;
const ROUNDS = 8;

beforeAll(async () => {
  // No user cache: every /api/me writes through the pool, so each request really needs a connection.
  cluster = await startCluster({ name: 's4', instances: 2, env: { USER_CACHE_TTL_MS: '0', DATABASE_POOL_MAX: '8' } });
});
afterAll(() => cluster?.stop());

async function fillPools(): Promise<void> {
  // Enough concurrent requests per instance that each pool opens several connections, then goes idle.
  await Promise.all(
    cluster.services.flatMap((s) => Array.from({ length: 24 }, () => api(s.url, tokenFor(), 'GET', '/api/me'))),
  );
}

async function terminate(state: 'idle' | 'any'): Promise<number> {
  const rows = await cluster.pg.sql<{ n: string }>(
    `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))::text AS n FROM pg_stat_activity
      WHERE application_name = 'accounting-service' AND ($1 = 'any' OR state = 'idle')`,
    [state],
  );
  return Number(rows[0].n);
}

test('When the database terminates idle pooled connections, then every process survives and the next request succeeds', async () => {
  let terminated = 0;
  let nextOk = 0;
  let nextTotal = 0;
  for (let round = 0; round < ROUNDS; round++) {
    await fillPools();
    const killed = await terminate('idle');
    expect(killed).toBeGreaterThan(0);
    terminated += killed;

    // Straight away, no pause, several at once: the requests may be handed pooled connections that the
    // server has killed before this process noticed (the statement then fails with 57P01 and never ran).
    for (const s of cluster.services) {
      expect((await call(s.url, { path: '/health' })).status).toBe(200);
      const next = await Promise.all(Array.from({ length: 8 }, () => api(s.url, tokenFor(), 'GET', '/api/me')));
      for (const me of next) {
        nextTotal++;
        if (me.status === 200) nextOk++;
        else console.error(`round ${round} ${s.options.name}: ${me.status} ${me.error ?? me.text}`);
      }
    }
  }

  for (const s of cluster.services) expect(s.alive).toBe(true);
  expect(nextOk).toBe(nextTotal);
  const ledger = await checkLedger(cluster.pg, { url: cluster.services[0].url, adminToken: tokenFor({ sub: 's4-admin', role: 'admin' }) });
  expect(ledger.problems).toEqual([]);
  figure(
    `scenario 4: terminated ${terminated} idle pooled connections over ${ROUNDS} rounds; processes alive ${cluster.services.filter((s) => s.alive).length}/${cluster.services.length}; requests sent right after 200 in ${nextOk}/${nextTotal}; reconcile ok`,
  );
});

test('When the database terminates busy connections under load, then requests get 200 or 503 (never 500) and the processes keep serving', async () => {
  const tally = new Tally();
  let stop = false;
  const killer = (async () => {
    let n = 0;
    while (!stop) {
      await sleep(400);
      n += await terminate('any');
    }
    return n;
  })();
  await runLoad({
    concurrency: 16,
    maxOperations: 3000,
    maxDurationMs: 6_000,
    operation: async (i) => {
      const s = cluster.services[i % cluster.services.length];
      tally.add(await api(s.url, tokenFor(), 'GET', '/api/me'));
    },
  });
  stop = true;
  const terminated = await killer;
  // The last round of terminations may still be landing; once it has, every process serves normally.
  await sleep(500);
  const after = await Promise.all(cluster.services.map((s) => api(s.url, tokenFor(), 'GET', '/api/me')));
  expect(after.map((r) => r.status)).toEqual(cluster.services.map(() => 200));
  expect(tally.count((s) => s !== 200 && s !== 503)).toBe(0);
  for (const s of cluster.services) expect(s.alive).toBe(true);
  figure(`scenario 4b: ${terminated} connections terminated during ${tally.total} requests: ${tally.summary()}; 500s=0; processes alive`);
});
