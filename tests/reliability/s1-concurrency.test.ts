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
 *  (b) a mixed storm on one user (initialize, finalize, abort, extend, usage record, refund, allocate, balance
 *      and ledger reads, with the sweeper and the lot-expiry job running in every instance) under a user
 *      budget and an org budget (shared with a second member, whose limits are raised during the storm): no
 *      deadlock (PostgreSQL's own counter and its log), no 5xx, the ledger reconciles, no balance goes
 *      negative, and every budget counter equals what the sessions and usage records say it should be.
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

/**
 * Budget counters recomputed from the sessions and usage records alone (docs/budgets.md), compared with
 * budget_counters: per budget and period, held = what the members' active sessions hold (period of their
 * initialize), spent = credits - refunded of the members' usage records (a session's record counts in the
 * period of its session's initialize, any other record in the period of its own time). Valid for budgets
 * created before their members' first request, as in the storm. Returns one line per difference.
 */
async function budgetCounterDifferences(budgetIds: string[], members: string[]): Promise<string[]> {
  const rows = await cluster.pg.sql<{ budget_id: string; period_start: string; held: string; spent: string; exp_held: string; exp_spent: string }>(
    `WITH b AS (SELECT * FROM budgets WHERE id = ANY($1::bigint[])),
     m AS (SELECT id AS user_id, org_id FROM user_accounts WHERE id = ANY($2::text[])),
     bm AS (SELECT b.id AS budget_id, b.period, b.timezone, m.user_id FROM b JOIN m ON m.user_id = b.user_id OR m.org_id = b.org_id),
     held AS (SELECT bm.budget_id, acct_budget_period_start(bm.period, bm.timezone, s.created_at) AS period_start, sum(s.allocated_credits) AS held
                FROM bm JOIN streaming_sessions s ON s.user_id = bm.user_id AND s.status = 'active' GROUP BY 1, 2),
     spent AS (SELECT bm.budget_id, acct_budget_period_start(bm.period, bm.timezone, coalesce(s.created_at, r.created_at)) AS period_start,
                      sum(r.credits - r.refunded_credits) AS spent
                 FROM bm JOIN usage_records r ON r.user_id = bm.user_id
                 LEFT JOIN streaming_sessions s ON s.user_id = r.user_id AND s.id = r.session_id GROUP BY 1, 2),
     expected AS (SELECT coalesce(h.budget_id, p.budget_id) AS budget_id, coalesce(h.period_start, p.period_start) AS period_start,
                         coalesce(h.held, 0) AS held, coalesce(p.spent, 0) AS spent
                    FROM held h FULL JOIN spent p ON p.budget_id = h.budget_id AND p.period_start = h.period_start)
     SELECT coalesce(k.budget_id, e.budget_id)::text AS budget_id, coalesce(k.period_start, e.period_start)::text AS period_start,
            coalesce(k.held_credits, 0)::text AS held, coalesce(k.spent_credits, 0)::text AS spent,
            coalesce(e.held, 0)::text AS exp_held, coalesce(e.spent, 0)::text AS exp_spent
       FROM (SELECT * FROM budget_counters WHERE budget_id = ANY($1::bigint[])) k
       FULL JOIN expected e ON e.budget_id = k.budget_id AND e.period_start = k.period_start
      WHERE coalesce(k.held_credits, 0) <> coalesce(e.held, 0) OR coalesce(k.spent_credits, 0) <> coalesce(e.spent, 0)`,
    [budgetIds, members],
  );
  return rows.map((r) => `budget ${r.budget_id} period ${r.period_start}: held ${r.held} (expected ${r.exp_held}), spent ${r.spent} (expected ${r.exp_spent})`);
}

test('When a mixed storm hits one user from 3 instances with sweepers running and budgets active, then 0 deadlocks, 0 5xx, the ledger reconciles and the budget counters match', async () => {
  const org = 's1-storm-org';
  const user = { id: 's1-storm', token: tokenFor({ sub: 's1-storm', expiresIn: '2h', extra: { org } }) };
  // A second member of the org: its sessions count on the org budget too.
  const mate = { id: 's1-storm-mate', token: tokenFor({ sub: 's1-storm-mate', expiresIn: '2h', extra: { org } }) };
  const supToken = tokenFor({ sub: supervisor.id, role: 'supervisor', expiresIn: '2h' });
  expect((await allocate(urls()[0], supToken, { userId: user.id, credits: 50 })).status).toBe(201);
  expect((await allocate(urls()[0], supToken, { userId: mate.id, credits: 100_000 })).status).toBe(201);
  // Mirror the org claim before the budgets exist (the first request of each member).
  for (const who of [user, mate]) expect((await api(urls()[0], who.token, 'GET', '/api/credits/balance')).status).toBe(200);
  // Small limits, raised during the storm (PATCH), so both budgets refuse some requests and admit others.
  const budgets: Array<{ id: string; limit: number }> = [];
  for (const body of [
    { scope: { userId: user.id }, period: 'day', limitCredits: 20 },
    { scope: { orgId: org }, period: 'day', limitCredits: 40, timezone: 'America/New_York' },
  ]) {
    const res = await api(urls()[0], supToken, 'POST', '/api/budgets', body);
    expect(res.status).toBe(201);
    budgets.push({ id: (res.json as { id: string }).id, limit: body.limitCredits });
  }
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
  const records: string[] = [];
  // 402s by error code (BUDGET_EXCEEDED, INSUFFICIENT_CREDITS, UNPAID_LIMIT), for the figure and the budget check.
  const refusals = new Map<string, number>();
  const countRefusal = (res: Awaited<ReturnType<typeof api>>) => {
    const code = res.status === 402 ? (res.json as { error?: { code?: string } })?.error?.code : undefined;
    if (code) refusals.set(code, (refusals.get(code) ?? 0) + 1);
    return res;
  };

  const ops: Array<[number, () => Promise<void>]> = [
    [30, async () => {
      const sessionId = newId('storm');
      // A fifth of the sessions get a 1-2 s TTL and are left for the sweepers (and for late finalizes).
      const ttlSeconds = Math.random() < 0.2 ? randomInt(1, 2) : undefined;
      const res = countRefusal(record('initialize', await initialize(pick(urls()), user.token, { sessionId, estimatedInputTokens: randomInt(1_000, 50_000), estimatedOutputTokens: randomInt(1_000, 50_000), ttlSeconds })));
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
      const res = countRefusal(record('usage', await recordUsage(pick(urls()), user.token, body, Math.random() < 0.5 ? newId('usage') : undefined)));
      if (res.status === 201) records.push((res.json as { usageRecord: { id: string } }).usageRecord.id);
    }],
    [4, async () => {
      // A larger hold on an open session: counted on both budgets, or 402 with the hold unchanged.
      const sessionId = takeOpen();
      if (!sessionId) return;
      countRefusal(record('extend', await api(pick(urls()), user.token, 'POST', '/api/streaming-sessions/extend', { sessionId, additionalCredits: (randomInt(1, 2_000_000) / 1_000_000).toFixed(6) })));
      open.push(sessionId);
    }],
    [2, async () => {
      // A refund (part or all) of a recorded usage: its budgets' spend goes down in the period it counted in.
      if (!records.length) return;
      const id = pick(records);
      const body = Math.random() < 0.5 ? { reason: 'storm' } : { reason: 'storm', credits: (randomInt(1, 500_000) / 1_000_000).toFixed(6) };
      record('refund', await api(pick(urls()), supToken, 'POST', `/api/usage/records/${id}/refund`, body));
    }],
    [5, async () => {
      // The org's other member: initialize and settle at once, on the same org counter row.
      const sessionId = newId('mate');
      const res = countRefusal(record('mate initialize', await initialize(pick(urls()), mate.token, { sessionId, estimatedCredits: (randomInt(1, 3_000_000) / 1_000_000).toFixed(6) })));
      if (res.status !== 201) return;
      record('mate finalize', await finalize(pick(urls()), mate.token, { sessionId, actualInputTokens: randomInt(0, 100_000), actualOutputTokens: randomInt(0, 20_000) }));
    }],
    [2, async () => {
      // A supervisor raises a limit while requests race on its counter (limits only go up, see the held check).
      const budget = pick(budgets);
      budget.limit += randomInt(5, 60);
      record('budget patch', await api(pick(urls()), supToken, 'PATCH', `/api/budgets/${budget.id}`, { limitCredits: budget.limit }));
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
  const budgetIds = budgets.map((b) => b.id);
  const budgetReconcile = await cluster.pg.sql(`SELECT * FROM acct_budget_reconcile()`, []);
  const budgetDifferences = await budgetCounterDifferences(budgetIds, [user.id, mate.id]);
  // Holds are admitted only while spent + held + hold <= limit, and limits only went up: held never exceeds the limit.
  const overHeld = await cluster.pg.sql<{ budget_id: string }>(
    `SELECT k.budget_id::text FROM budget_counters k JOIN budgets b ON b.id = k.budget_id
      WHERE k.budget_id = ANY($1::bigint[]) AND k.held_credits > b.limit_credits`,
    [budgetIds],
  );
  // budget.threshold: at most one event per budget, period and level.
  const repeatedThresholds = await cluster.pg.sql(
    `SELECT data->>'budgetId' AS budget, data->>'periodStart' AS period, data->>'thresholdPercent' AS level, count(*)::int AS n
       FROM events WHERE type = 'budget.threshold' AND data->>'budgetId' = ANY($1::text[]) GROUP BY 1, 2, 3 HAVING count(*) > 1`,
    [budgetIds],
  );
  const [budgetFigures] = await cluster.pg.sql<{ counters: string; thresholds: string }>(
    `SELECT (SELECT count(*) FROM budget_counters WHERE budget_id = ANY($1::bigint[]))::text AS counters,
            (SELECT count(*) FROM events WHERE type = 'budget.threshold' AND data->>'budgetId' = ANY($1::text[]))::text AS thresholds`,
    [budgetIds],
  );
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
  expect(budgetReconcile).toEqual([]);
  expect(budgetDifferences).toEqual([]);
  expect(overHeld).toEqual([]);
  expect(repeatedThresholds).toEqual([]);
  expect(refusals.get('BUDGET_EXCEEDED') ?? 0).toBeGreaterThan(0);
  figure(
    `scenario 1b: ${STORM_MS / 1000}s storm on one user, ${INSTANCES} instances, concurrency 24: ${operations} operations in ${(elapsedMs / 1000).toFixed(0)}s; ` +
      `5xx=${all.serverErrors}, deadlocks=${deadlocks} (pg log ${pgDeadlockLines}, service logs ${serviceDeadlockLines}); ${perOp}; ` +
      `sessions completed/aborted/expired/active ${counts.completed}/${counts.aborted}/${counts.expired}/${counts.active}, usage records with unpaid credits ${counts.unpaid_records}; ` +
      `budgets (user + org, limits raised to ${budgets.map((b) => b.limit).join('/')}): 402 by code {${[...refusals.entries()].map(([c, n]) => `${c}:${n}`).join(' ')}}, ${budgetFigures.counters} counter rows, ` +
      `${budgetFigures.thresholds} budget.threshold events, counters = sessions/records; reconcile ok, no negative balance`,
  );
});
