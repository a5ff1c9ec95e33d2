import { checkLedger, deadlockCount } from './harness/checks';
import { startCluster, type Cluster } from './harness/cluster';
import { figure } from './harness/figures';
import { api } from './harness/http';
import { runLoad, Tally } from './harness/load';
import { abort, allocate, availableMicro, finalize, initialize, newId, pick, randomInt, recordUsage } from './harness/ops';
import { SETTINGS } from './harness/settings';
import { tokenFor } from '../support/tokens';

/**
 * Scenario 1: several service processes on one database, all hammering one user.
 *  (a) 1000 concurrent initializes, spread over 3 instances, against a balance that covers exactly 100:
 *      exactly 100 are accepted, the rest get 402, and nothing else happens.
 *  (b) a mixed storm on one user (initialize, finalize, abort, usage record, allocate, balance and ledger
 *      reads, with the sweeper and the lot-expiry job running in every instance): no deadlock (PostgreSQL's
 *      own counter and its log), no 5xx, the ledger reconciles and no balance goes negative.
 * RELIABILITY_STORM_MS sets the storm's length (default 120000 = 2 minutes; 15 minutes with RELIABILITY_SOAK=1).
 */
const INSTANCES = 3;
const STORM_MS = SETTINGS.stormMs;
const supervisor = { id: 's1-supervisor', token: tokenFor({ sub: 's1-supervisor', role: 'supervisor' }) };
const admin = { id: 's1-admin', token: tokenFor({ sub: 's1-admin', role: 'admin', expiresIn: '2h' }) };

let cluster: Cluster;
const urls = () => cluster.services.map((s) => s.url);

beforeAll(async () => {
  cluster = await startCluster({
    name: 's1',
    instances: INSTANCES,
    env: { SWEEPER_INTERVAL_MS: '200', LOG_LEVEL: 'warn' },
  });
});
afterAll(() => cluster?.stop());

test('When 1000 initializes race across 3 instances for a balance covering 100, then exactly 100 are accepted', async () => {
  const user = { id: 's1-racer', token: tokenFor({ sub: 's1-racer' }) };
  expect((await allocate(urls()[0], supervisor.token, { userId: user.id, credits: 100 })).status).toBe(201);
  const deadlocksBefore = await deadlockCount(cluster.pg);

  const tally = new Tally();
  const firstTry = new Tally();
  const acceptedBy = urls().map(() => 0);
  await Promise.all(
    Array.from({ length: 1000 }, async (_, i) => {
      const instance = i % INSTANCES;
      // A 503 is back-pressure ("nothing was changed, retry"): like a real client, honour Retry-After and
      // retry the same sessionId. The first answers are counted separately.
      for (let attempt = 1; ; attempt++) {
        const res = await initialize(urls()[instance], user.token, { sessionId: `race-${i}`, estimatedCredits: 1 });
        if (attempt === 1) firstTry.add(res);
        if (res.status !== 503 || attempt === 10) {
          tally.add(res);
          if (res.status === 201) acceptedBy[instance]++;
          return;
        }
        await new Promise((r) => setTimeout(r, 1000 * Number(res.headers['retry-after'] ?? 1) * Math.random()));
      }
    }),
  );

  const [sessions] = await cluster.pg.sql<{ n: string; held: string }>(
    `SELECT count(*)::text AS n, coalesce(sum(allocated_credits), 0)::text AS held FROM streaming_sessions WHERE user_id = $1 AND status = 'active'`,
    [user.id],
  );
  const deadlocks = (await deadlockCount(cluster.pg)) - deadlocksBefore;
  const ledger = await checkLedger(cluster.pg, { url: urls()[0], adminToken: admin.token });

  if (tally.count((s) => s !== 201 && s !== 402)) console.error(`1000 initializes: ${tally.summary()}`, [...tally.samples.entries()]);
  expect(tally.count((s) => s === 201)).toBe(100);
  expect(tally.count((s) => s === 402)).toBe(900);
  expect(tally.serverErrors).toBe(0);
  expect(sessions).toEqual({ n: '100', held: '100000000' });
  expect(await availableMicro((q, p) => cluster.pg.sql(q, p), user.id)).toBe(0n);
  expect(deadlocks).toBe(0);
  expect(ledger.problems).toEqual([]);
  expect(acceptedBy.filter((n) => n > 0).length).toBeGreaterThan(1);
  expect(firstTry.count((s) => s !== 201 && s !== 402 && s !== 503)).toBe(0);
  figure(
    `scenario 1a: accepted=${tally.count((s) => s === 201)}/1000 across ${INSTANCES} instances (per instance ${acceptedBy.join('/')}), ` +
      `402=${tally.count((s) => s === 402)}, final 5xx=${tally.serverErrors}, deadlocks=${deadlocks}, held=100 credits exactly; ` +
      `first answers ${firstTry.summary()} (503 = pool back-pressure, retried with the same sessionId); reconcile ok`,
  );
});

test('When a mixed storm hits one user from 3 instances with sweepers running, then 0 deadlocks, 0 5xx, and the ledger reconciles', async () => {
  const user = { id: 's1-storm', token: tokenFor({ sub: 's1-storm', expiresIn: '2h' }) };
  const supToken = tokenFor({ sub: supervisor.id, role: 'supervisor', expiresIn: '2h' });
  expect((await allocate(urls()[0], supToken, { userId: user.id, credits: 50 })).status).toBe(201);
  const deadlocksBefore = await deadlockCount(cluster.pg);
  const pgLogBefore = cluster.pg.logLines.length;

  const open: string[] = [];
  // Sessions with a 1-2 s TTL, left alone: the sweepers expire them, and some get a late finalize.
  const orphans: Array<{ sessionId: string; at: number }> = [];
  const byOp = new Map<string, Tally>();
  const all = new Tally();
  const record = (op: string, res: Awaited<ReturnType<typeof api>>) => {
    if (!byOp.has(op)) byOp.set(op, new Tally());
    byOp.get(op)!.add(res);
    all.add(res);
    return res;
  };
  const takeOpen = () => (open.length ? open.splice(Math.floor(Math.random() * open.length), 1)[0] : undefined);

  const ops: Array<[number, () => Promise<void>]> = [
    [30, async () => {
      const sessionId = newId('storm');
      // A fifth of the sessions get a 1-2 s TTL and are left for the sweepers (and for late finalizes).
      const ttlSeconds = Math.random() < 0.2 ? randomInt(1, 2) : undefined;
      const res = record('initialize', await initialize(pick(urls()), user.token, { sessionId, estimatedInputTokens: randomInt(1_000, 50_000), estimatedOutputTokens: randomInt(1_000, 50_000), ttlSeconds }));
      if (res.status !== 201) return;
      if (ttlSeconds) orphans.push({ sessionId, at: Date.now() });
      else open.push(sessionId);
    }],
    [3, async () => {
      // A late finalize, racing the sweepers: the session may be active, being expired, or expired.
      const i = orphans.findIndex((o) => Date.now() - o.at > 1_500);
      if (i < 0) return;
      const [{ sessionId }] = orphans.splice(i, 1);
      record('late finalize', await finalize(pick(urls()), user.token, { sessionId, actualInputTokens: randomInt(0, 50_000), actualOutputTokens: randomInt(0, 50_000) }));
    }],
    [22, async () => {
      const sessionId = takeOpen();
      if (!sessionId) return;
      // Sometimes far above the estimate: overage, charged from available credits, unpaid when short.
      const scale = Math.random() < 0.15 ? 20 : 1;
      record('finalize', await finalize(pick(urls()), user.token, { sessionId, actualInputTokens: randomInt(0, 50_000) * scale, actualOutputTokens: randomInt(0, 50_000) * scale }));
    }],
    [8, async () => {
      const sessionId = takeOpen();
      if (!sessionId) return;
      record('abort', await abort(pick(urls()), user.token, { sessionId, actualInputTokens: randomInt(0, 5_000), reason: 'storm' }));
    }],
    [15, async () => {
      const body = Math.random() < 0.5
        ? { service: 'chat', operation: 'completion', credits: (randomInt(1, 2_000_000) / 1_000_000).toFixed(6) }
        : { service: 'embeddings', operation: 'embed', modelId: 'gpt-4o-mini', inputTokens: randomInt(1, 200_000), outputTokens: 0 };
      record('usage', await recordUsage(pick(urls()), user.token, body, Math.random() < 0.5 ? newId('usage') : undefined));
    }],
    [6, async () => {
      // Some lots expire within seconds, so the lot-expiry job runs against live holds.
      const expiresAt = Math.random() < 0.3 ? new Date(Date.now() + randomInt(1_000, 5_000)).toISOString() : undefined;
      record('allocate', await allocate(pick(urls()), supToken, { userId: user.id, credits: randomInt(1, 5), expiresAt, note: 'storm' }, newId('alloc')));
    }],
    [12, async () => void record('balance', await api(pick(urls()), user.token, 'GET', '/api/credits/balance'))],
    [4, async () => void record('transactions', await api(pick(urls()), user.token, 'GET', '/api/credits/transactions?limit=20'))],
    [3, async () => void record('active', await api(pick(urls()), user.token, 'GET', '/api/streaming-sessions/active'))],
  ];
  const totalWeight = ops.reduce((sum, [w]) => sum + w, 0);
  const chooseOp = () => {
    let r = Math.random() * totalWeight;
    for (const [w, op] of ops) if ((r -= w) < 0) return op;
    return ops[0][1];
  };

  const { operations, elapsedMs } = await runLoad({ concurrency: 24, maxOperations: 2_000_000, maxDurationMs: STORM_MS, operation: () => chooseOp()() });
  // Let the short-TTL sessions expire and the sweepers settle them before checking.
  await new Promise((r) => setTimeout(r, 3_000));

  const deadlocks = (await deadlockCount(cluster.pg)) - deadlocksBefore;
  const pgDeadlockLines = cluster.pg.logLines.slice(pgLogBefore).filter((l) => /deadlock detected/i.test(l)).length;
  const serviceDeadlockLines = cluster.services.reduce((n, s) => n + (s.log().match(/deadlock|40P01/gi)?.length ?? 0), 0);
  const ledger = await checkLedger(cluster.pg, { url: urls()[0], adminToken: admin.token });
  const [counts] = await cluster.pg.sql<Record<string, string>>(
    `SELECT count(*) FILTER (WHERE status = 'completed')::text AS completed, count(*) FILTER (WHERE status = 'aborted')::text AS aborted,
            count(*) FILTER (WHERE status = 'expired')::text AS expired, count(*) FILTER (WHERE status = 'active')::text AS active,
            (SELECT count(*) FROM usage_records WHERE user_id = $1 AND unpaid_credits > 0)::text AS unpaid_records
       FROM streaming_sessions WHERE user_id = $1`,
    [user.id],
  );

  const perOp = [...byOp.entries()].map(([op, t]) => `${op}{${t.summary()}}`).join(' ');
  if (all.serverErrors > 0) console.error('5xx samples', [...all.samples.entries()]);
  expect(all.serverErrors).toBe(0);
  expect(all.count((s) => s === 0)).toBe(0);
  expect(deadlocks).toBe(0);
  expect(pgDeadlockLines).toBe(0);
  expect(serviceDeadlockLines).toBe(0);
  expect(ledger.problems).toEqual([]);
  expect(byOp.get('initialize')!.count((s) => s === 201)).toBeGreaterThan(0);
  expect(byOp.get('finalize')?.count((s) => s === 200) ?? 0).toBeGreaterThan(0);
  figure(
    `scenario 1b: ${STORM_MS / 1000}s storm on one user, ${INSTANCES} instances, concurrency 24: ${operations} operations in ${(elapsedMs / 1000).toFixed(0)}s; ` +
      `5xx=${all.serverErrors}, deadlocks=${deadlocks} (pg log ${pgDeadlockLines}, service logs ${serviceDeadlockLines}); ${perOp}; ` +
      `sessions completed/aborted/expired/active ${counts.completed}/${counts.aborted}/${counts.expired}/${counts.active}, usage records with unpaid credits ${counts.unpaid_records}; reconcile ok, no negative balance`,
  );
});
