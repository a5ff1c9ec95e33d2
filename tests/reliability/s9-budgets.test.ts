import { checkLedger, deadlockCount } from './harness/checks';
import { startCluster, type Cluster } from './harness/cluster';
import { figure } from './harness/figures';
import { api, call } from './harness/http';
import { Tally } from './harness/load';
import { allocate, MODEL } from './harness/ops';
import { tokenFor } from '../support/tokens';

/**
 * Scenario 9 (budgets, docs/budgets.md): 1000 concurrent initializes from 20 users of one organization,
 * spread over 3 service processes, against an org budget worth exactly 100 holds (every user has plenty of
 * credits): exactly 100 are accepted, 900 get BUDGET_EXCEEDED, 0 deadlocks, the ledger and the budget
 * counters reconcile.
 */
const INSTANCES = 3;
const supervisor = { id: 's9-supervisor', token: tokenFor({ sub: 's9-supervisor', role: 'supervisor' }) };
const admin = { id: 's9-admin', token: tokenFor({ sub: 's9-admin', role: 'admin', expiresIn: '2h' }) };

let cluster: Cluster;
const urls = () => cluster.services.map((s) => s.url);

beforeAll(async () => {
  cluster = await startCluster({ name: 's9', instances: INSTANCES, env: { SWEEPER_INTERVAL_MS: '200', LOG_LEVEL: 'warn' } });
});
afterAll(() => cluster?.stop());

test('When 1000 initializes from 20 users of one org race across 3 instances for an org budget of 100 holds, then exactly 100 are accepted', async () => {
  const org = 's9-org';
  const users = Array.from({ length: 20 }, (_, i) => ({ id: `s9-user-${i}`, token: tokenFor({ sub: `s9-user-${i}`, extra: { org } }) }));
  for (const user of users) expect((await allocate(urls()[0], supervisor.token, { userId: user.id, credits: 1000 })).status).toBe(201);
  const budget = await api(urls()[0], supervisor.token, 'POST', '/api/budgets', { scope: { orgId: org }, period: 'day', limitCredits: 100 });
  expect(budget.status).toBe(201);
  const budgetId = (budget.json as { id: string }).id;
  const deadlocksBefore = await deadlockCount(cluster.pg);

  const tally = new Tally();
  const acceptedBy = urls().map(() => 0);
  let timeouts = 0;
  await Promise.all(
    Array.from({ length: 1000 }, async (_, i) => {
      const instance = i % INSTANCES;
      const user = users[i % users.length];
      const body = { sessionId: `s9-race-${i}`, modelId: MODEL, estimatedCredits: 1 };
      // All 1000 queue on one org counter row: allow a long wait. 503 (back-pressure, nothing changed) and
      // no answer at all are retried with the same sessionId, which replays a hold that was made (200).
      for (let attempt = 1; ; attempt++) {
        const res = await call(urls()[instance], {
          method: 'POST',
          path: '/api/streaming-sessions/initialize',
          body,
          headers: { Authorization: `Bearer ${user.token}` },
          timeoutMs: 60_000,
        });
        if (res.status === 0) timeouts++;
        if ((res.status !== 503 && res.status !== 0) || attempt === 10) {
          tally.add(res);
          if (res.status === 201 || res.status === 200) acceptedBy[instance]++;
          return;
        }
        await new Promise((r) => setTimeout(r, 1000 * Number(res.headers['retry-after'] ?? 1) * Math.random()));
      }
    }),
  );

  const [counter] = await cluster.pg.sql<{ held: string; spent: string }>(
    `SELECT held_credits::text AS held, spent_credits::text AS spent FROM budget_counters WHERE budget_id = $1::bigint`,
    [budgetId],
  );
  const budgetProblems = await cluster.pg.sql(`SELECT * FROM acct_budget_reconcile()`, []);
  const deadlocks = (await deadlockCount(cluster.pg)) - deadlocksBefore;
  const ledger = await checkLedger(cluster.pg, { url: urls()[0], adminToken: admin.token });

  if (tally.count((s) => s !== 201 && s !== 200 && s !== 402)) console.error(`1000 initializes: ${tally.summary()}`, [...tally.samples.entries()]);
  expect(tally.count((s) => s === 201 || s === 200)).toBe(100);
  expect(tally.count((s) => s === 402)).toBe(900);
  expect(tally.serverErrors).toBe(0);
  expect(counter).toEqual({ held: '100000000', spent: '0' });
  expect(budgetProblems).toEqual([]);
  expect(deadlocks).toBe(0);
  expect(ledger.problems).toEqual([]);
  figure(
    `scenario 9: org budget of 100 holds, 20 users, 1000 initializes over ${INSTANCES} instances: accepted=${tally.count((s) => s === 201 || s === 200)} ` +
      `(per instance ${acceptedBy.join('/')}), 402=${tally.count((s) => s === 402)}, 5xx=${tally.serverErrors}, deadlocks=${deadlocks}, client retries after no answer=${timeouts}; reconcile ok`,
  );
});
