/**
 * The budgets and metering benchmark (part of `npm run bench`; alone: `npm run build && node
 * dist/bench/budgets-metering.js [--duration 30 --rounds 6 --connections 50 --users 3000 --pairs M,B,O,H --smoke]`;
 * --duration is the time per scenario, split over the rounds).
 *
 * One fresh database, the compiled service started as in production (as bench/run.ts does), this process
 * as the load generator (it does nothing else while measuring). Pairs of scenarios run alternately, round
 * after round (the order within a pair swapped every round), so the load of a shared machine falls on both
 * sides of each ratio alike:
 *
 *   M-plain  initialize→finalize flows, input/output tokens only            (issue 13: token kinds)
 *   M-kinds  the same flows with every token kind present (cached input, cache writes 5 min and 1 h,
 *            reasoning) in initialize and finalize                          → ratio M-kinds / M-plain
 *   B-none   initialize, random users without budgets                        (issue 14: budgets)
 *   B-both   initialize, random users each under a user budget and an org budget (own org per user, so
 *            this measures the cost of budgets, not contention)             → ratio B-both / B-none
 *   O-on     initialize→finalize flows, input/output only, the outbox as it runs (issue 15: events)
 *   O-off    the same flows with acct_event_balance (the per-movement low-balance check, the outbox's only
 *            work on a movement that crosses no threshold) replaced by an empty function for that scenario
 *            and restored from its file right after                        → ratio O-on / O-off
 *   H-org    hot org: initialize→finalize flows on every connection, the users of ONE org with an org
 *            budget in turn (requests in flight are different users; all holds and settles serialize on
 *            the org's counter row): req/s, p99, deadlocks
 *
 * Deadlocks are pg_stat_database.deadlocks before/after each scenario. Budget limits are far above what
 * the run spends, so nothing is refused; any non-2xx is reported. Prints a table and the ratios; writes
 * nothing (the figures go into docs by hand, with the command and the machine's load).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import autocannon from 'autocannon';
import jwt from 'jsonwebtoken';
import { Client } from 'pg';
import { findFreePort } from '../src/db/embedded-postgres';
import {
  ACTUAL_INPUT_TOKENS,
  ACTUAL_OUTPUT_TOKENS,
  BENCH_JWT_SECRET,
  DEFAULT_POOL_MAX,
  ESTIMATED_INPUT_TOKENS,
  ESTIMATED_OUTPUT_TOKENS,
  MODEL_ID,
  userId,
} from './constants';
import { migrate, startFreshDatabase, type FreshDatabase } from './fresh-database';
import { startNode, stopAll, stopChild, waitForHttp } from './processes';
import { seedUsers } from './seed';
import { productionNodeFlags, ROOT, serviceEnv } from './service-builds';


interface Options {
  durationSec: number;
  rounds: number;
  connections: number;
  users: number;
  poolMax: number;
  smoke: boolean;
  /** Which pairs run (--pairs M,B,O,H; default all): the first letter of their scenario ids. */
  pairs: string[];
}

function parseArgs(argv: string[]): Options {
  const value = (name: string) => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const smoke = argv.includes('--smoke');
  const num = (name: string, fallback: number, min: number, max: number) => {
    const raw = value(name);
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name} must be an integer between ${min} and ${max}`);
    return n;
  };
  return {
    smoke,
    durationSec: num('duration', smoke ? 2 : 30, 1, 600),
    rounds: num('rounds', smoke ? 1 : 6, 1, 20),
    connections: num('connections', smoke ? 10 : 50, 1, 1000),
    users: num('users', smoke ? 300 : 3000, 30, 100_000),
    poolMax: num('pool', Number(process.env.DATABASE_POOL_MAX ?? DEFAULT_POOL_MAX), 1, 200),
    pairs: (value('pairs') ?? 'M,B,O,H').split(',').map((p) => p.trim().toUpperCase()),
  };
}

const log = (message: string) => console.log(`[bench budgets/metering ${new Date().toISOString().slice(11, 19)}] ${message}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The seeded users split in three equal groups: no budgets, user + own-org budgets, members of the hot org. */
interface Groups {
  plain: string[];
  budgeted: string[];
  hotOrg: string[];
}
const HOT_ORG = 'bench-hot-org';
/** Far above anything a run can spend (credits), so no request is refused. */
const HUGE_LIMIT_MICRO = (1_000_000_000n * 1_000_000n).toString();

async function seedBudgets(client: Client, groups: Groups): Promise<void> {
  await client.query(`UPDATE user_accounts SET org_id = 'bench-org-' || id WHERE id = ANY($1::text[])`, [groups.budgeted]);
  await client.query(`UPDATE user_accounts SET org_id = $2 WHERE id = ANY($1::text[])`, [groups.hotOrg, HOT_ORG]);
  await client.query(
    `INSERT INTO budgets (user_id, org_id, period, limit_credits, timezone, created_by)
     SELECT id, NULL, 'day', $2::bigint, 'Europe/Berlin', 'bench-seed' FROM unnest($1::text[]) AS id
     UNION ALL
     SELECT NULL, 'bench-org-' || id, 'month', $2::bigint, 'America/New_York', 'bench-seed' FROM unnest($1::text[]) AS id
     UNION ALL
     SELECT NULL, $3, 'week', $2::bigint, 'UTC', 'bench-seed'`,
    [groups.budgeted, HUGE_LIMIT_MICRO, HOT_ORG],
  );
  await client.query('ANALYZE');
}

async function deadlocks(client: Client): Promise<number> {
  const { rows } = await client.query<{ deadlocks: string }>('SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()');
  return Number(rows[0]?.deadlocks ?? 0);
}

type Kind = 'flow' | 'initialize';
interface Scenario {
  id: string;
  title: string;
  kind: Kind;
  users: () => string;
  /** Every token kind in the bodies (M-kinds). */
  allKinds?: boolean;
  /** Run with the outbox's per-movement work stubbed out (O-off). */
  outboxOff?: boolean;
}

const EVENT_BALANCE_SQL = path.join(ROOT, 'src/ledger/sql/acct_event_balance.sql');
/** O-off: the low-balance check as an empty function (same signature), so the flows write no event state. */
async function setOutbox(client: Client, on: boolean): Promise<void> {
  await client.query(
    on
      ? fs.readFileSync(EVENT_BALANCE_SQL, 'utf8')
      : `CREATE OR REPLACE FUNCTION acct_event_balance(p_user text) RETURNS void LANGUAGE plpgsql AS $$ BEGIN RETURN; END $$`,
  );
}

interface Measured {
  latencies: number[];
  seconds: number;
  ok: number;
  non2xx: number;
  errors: number;
  deadlocks: number;
  codes: Record<string, number>;
  /** req/s of each round alone. */
  perRound: number[];
}

const PARTS = { cachedInputTokens: 300, cacheWriteTokens: 100, cacheWrite1hTokens: 50, reasoningTokens: 200 };
let sequence = 0;
const runId = Math.random().toString(36).slice(2, 8);

function requestsOf(s: Scenario, auth: (user: string) => string): autocannon.Request[] {
  const parts = s.allKinds ? PARTS : {};
  type Ctx = { sessionId?: string; auth?: string };
  const init: autocannon.Request = {
    method: 'POST',
    path: '/api/streaming-sessions/initialize',
    setupRequest: (req, context) => {
      const ctx = context as Ctx;
      ctx.sessionId = `bm-${s.id}-${runId}-${(sequence++).toString(36)}`;
      ctx.auth = auth(s.users());
      const body = { sessionId: ctx.sessionId, modelId: MODEL_ID, estimatedInputTokens: ESTIMATED_INPUT_TOKENS, estimatedOutputTokens: ESTIMATED_OUTPUT_TOKENS, ...parts };
      return { ...req, headers: { 'content-type': 'application/json', authorization: ctx.auth }, body: JSON.stringify(body) };
    },
  };
  if (s.kind === 'initialize') return [init];
  const finalize: autocannon.Request = {
    method: 'POST',
    path: '/api/streaming-sessions/finalize',
    setupRequest: (req, context) => {
      const ctx = context as Ctx;
      if (!ctx.sessionId || !ctx.auth) return undefined as unknown as autocannon.Request;
      const body = { sessionId: ctx.sessionId, actualInputTokens: ACTUAL_INPUT_TOKENS, actualOutputTokens: ACTUAL_OUTPUT_TOKENS, ...parts };
      return { ...req, headers: { 'content-type': 'application/json', authorization: ctx.auth }, body: JSON.stringify(body) };
    },
  };
  return [init, finalize];
}

function runOnce(url: string, s: Scenario, seconds: number, connections: number, auth: (user: string) => string, into: Measured): Promise<void> {
  const countBefore = into.latencies.length;
  const requests = requestsOf(s, auth).map((r) => ({
    ...r,
    onResponse: (status: number, body: string) => {
      if (status >= 300) {
        const code = `${status} ${/"code"\s*:\s*"([A-Z_]{1,40})"/.exec(body)?.[1] ?? 'none'}`;
        into.codes[code] = (into.codes[code] ?? 0) + 1;
      }
    },
  }));
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const instance = autocannon({ url, connections, duration: seconds, requests, timeout: 10 }, (error, result) => {
      if (error) return reject(error);
      const elapsed = result.duration || (Date.now() - started) / 1000;
      into.seconds += elapsed;
      into.perRound.push((into.latencies.length - countBefore) / elapsed);
      into.ok += result['2xx'];
      into.non2xx += result.non2xx;
      into.errors += result.errors + result.timeouts;
      resolve();
    });
    instance.on('response', (_client: unknown, _status: number, _bytes: number, ms: number) => into.latencies.push(ms));
  });
}

const pct = (sorted: Float64Array, p: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] : NaN);
function summary(m: Measured) {
  const sorted = Float64Array.from(m.latencies).sort();
  return { reqPerSec: m.latencies.length / m.seconds, p50: pct(sorted, 50), p99: pct(sorted, 99), mean: m.latencies.reduce((a, b) => a + b, 0) / (m.latencies.length || 1) };
}

async function main(): Promise<number> {
  const options = parseArgs(process.argv.slice(2));
  const loadBefore = os.loadavg();
  let database: FreshDatabase | undefined;
  let stats: Client | undefined;
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'acct-bench-bm-'));
  try {
    database = await startFreshDatabase();
    await migrate(database.url);
    await seedUsers(database.url, options.users);
    const third = Math.floor(options.users / 3);
    const ids = Array.from({ length: options.users }, (_, i) => userId(i + 1));
    const groups: Groups = { plain: ids.slice(0, third), budgeted: ids.slice(third, 2 * third), hotOrg: ids.slice(2 * third) };
    stats = new Client({ connectionString: database.url });
    stats.on('error', () => undefined);
    await stats.connect();
    await seedBudgets(stats, groups);
    log(`fresh database (${database.where}); ${options.users} users: ${groups.plain.length} without budgets, ${groups.budgeted.length} under a user and an own-org budget, ${groups.hotOrg.length} in one hot org`);

    const port = await findFreePort();
    const url = `http://127.0.0.1:${port}`;
    const service = startNode(
      'service',
      path.join(ROOT, 'dist/src/server.js'),
      serviceEnv(port, database.url, options.poolMax),
      path.join(logDir, 'service.log'),
      productionNodeFlags(),
    );
    await waitForHttp(`${url}/ready`, service);

    const tokens = new Map<string, string>();
    const auth = (user: string) => {
      let t = tokens.get(user);
      if (!t) tokens.set(user, (t = `Bearer ${jwt.sign({ sub: user, role: 'user' }, BENCH_JWT_SECRET, { algorithm: 'HS256', expiresIn: '6h' })}`));
      return t;
    };
    const pick = (list: string[]) => () => list[(Math.random() * list.length) | 0];
    // The hot org's users in turn: with more members than connections, the requests in flight are all
    // different users of the one org (autocannon clears a connection's context after each flow).
    let nextMember = 0;
    const inTurn = (list: string[]) => () => list[nextMember++ % list.length];
    const scenarios: Scenario[] = [
      { id: 'M-plain', title: 'initialize→finalize, input/output only', kind: 'flow', users: pick(groups.plain) },
      { id: 'M-kinds', title: 'initialize→finalize, every token kind', kind: 'flow', users: pick(groups.plain), allKinds: true },
      { id: 'B-none', title: 'initialize, no budgets', kind: 'initialize', users: pick(groups.plain) },
      { id: 'B-both', title: 'initialize, user budget + org budget', kind: 'initialize', users: pick(groups.budgeted) },
      { id: 'O-on', title: 'initialize→finalize, outbox on', kind: 'flow', users: pick(groups.plain) },
      { id: 'O-off', title: 'initialize→finalize, low-balance check stubbed out', kind: 'flow', users: pick(groups.plain), outboxOff: true },
      { id: 'H-org', title: `initialize→finalize, one org (${groups.hotOrg.length} users in turn, 1 org budget)`, kind: 'flow', users: inTurn(groups.hotOrg) },
    ];
    const measured = new Map<string, Measured>(scenarios.map((s) => [s.id, { latencies: [], seconds: 0, ok: 0, non2xx: 0, errors: 0, deadlocks: 0, codes: {}, perRound: [] }]));

    // Warm-up (JIT, pools, plan caches) on the plain and the budgeted path.
    const warm: Measured = { latencies: [], seconds: 0, ok: 0, non2xx: 0, errors: 0, deadlocks: 0, codes: {}, perRound: [] };
    await runOnce(url, scenarios[0], options.smoke ? 1 : 3, options.connections, auth, warm);
    await runOnce(url, scenarios[3], options.smoke ? 1 : 3, options.connections, auth, warm);

    const slice = Math.max(1, Math.round(options.durationSec / options.rounds));
    // Each pair swaps its order every round (A B, then B A), so neither side always runs first.
    const pairs = [[scenarios[0], scenarios[1]], [scenarios[2], scenarios[3]], [scenarios[4], scenarios[5]], [scenarios[6]]].filter((pair) =>
      options.pairs.includes(pair[0].id[0]),
    );
    const selected = pairs.flat();
    for (let round = 1; round <= options.rounds; round++) {
      for (const s of pairs.flatMap((pair) => (round % 2 === 0 ? [...pair].reverse() : pair))) {
        const m = measured.get(s.id)!;
        const before = await deadlocks(stats);
        if (s.outboxOff) await setOutbox(stats, false);
        try {
          await runOnce(url, s, slice, options.connections, auth, m);
        } finally {
          if (s.outboxOff) await setOutbox(stats, true);
        }
        await sleep(1_100); // pg_stat counters are flushed about once a second
        m.deadlocks += (await deadlocks(stats)) - before;
        log(`round ${round}/${options.rounds} ${s.id}: ${m.perRound[m.perRound.length - 1].toFixed(0)} req/s this round`);
      }
    }
    const { rows: problems } = await stats.query(`SELECT count(*)::int AS n FROM acct_budget_reconcile()`);
    await stopChild(service, 15_000);

    const loadAfter = os.loadavg();
    const lines = [
      `budgets/metering bench: ${options.rounds} round(s) x ${slice} s per scenario, ${options.connections} connections, pool ${options.poolMax}, ` +
        `${os.cpus().length} CPUs, database ${database.where}; load average before ${loadBefore.map((l) => l.toFixed(2)).join(' ')}, after ${loadAfter.map((l) => l.toFixed(2)).join(' ')}`,
      '',
      '| scenario | what | req/s | p50 ms | p99 ms | non-2xx | errors | deadlocks |',
      '|---|---|---:|---:|---:|---:|---:|---:|',
    ];
    for (const s of selected) {
      const m = measured.get(s.id)!;
      const r = summary(m);
      const codes = Object.entries(m.codes).map(([c, n]) => `${c}:${n}`).join(' ');
      lines.push(`| ${s.id} | ${s.title} | ${r.reqPerSec.toFixed(0)} | ${r.p50.toFixed(1)} | ${r.p99.toFixed(1)} | ${m.non2xx}${codes ? ` (${codes})` : ''} | ${m.errors} | ${m.deadlocks} |`);
    }
    // Over the whole run, and per round: round i of A against round i of B, which ran right next to it (on a
    // shared machine the load drifts between rounds; the median of the per-round ratios resists that).
    const ratio = (a: string, b: string) => {
      const x = summary(measured.get(a)!);
      const y = summary(measured.get(b)!);
      const ra = measured.get(a)!.perRound;
      const rb = measured.get(b)!.perRound;
      const perRound = ra.map((v, i) => (rb[i] / v - 1) * 100);
      const median = [...perRound].sort((p, q) => p - q)[Math.floor((perRound.length - 1) / 2)];
      return `${a}/${b}: time per request ${((y.reqPerSec / x.reqPerSec - 1) * 100).toFixed(1)}% (req/s ${x.reqPerSec.toFixed(0)} vs ${y.reqPerSec.toFixed(0)}), ` +
        `mean latency ${((x.mean / y.mean - 1) * 100).toFixed(1)}%, p50 ${((x.p50 / y.p50 - 1) * 100).toFixed(1)}%, p99 ${((x.p99 / y.p99 - 1) * 100).toFixed(1)}%; ` +
        `per round ${perRound.map((p) => `${p.toFixed(0)}%`).join(' ')} (median ${median.toFixed(1)}%)`;
    };
    lines.push('');
    if (options.pairs.includes('M')) lines.push(`issue 13 (target <= 5% over): ${ratio('M-kinds', 'M-plain')}`);
    if (options.pairs.includes('B')) lines.push(`issue 14 (target <= 15% over): ${ratio('B-both', 'B-none')}`);
    if (options.pairs.includes('O')) lines.push(`issue 15 (target <= 10% over): ${ratio('O-on', 'O-off')}`);
    if (options.pairs.includes('H')) {
      const hot = summary(measured.get('H-org')!);
      lines.push(`hot org: ${hot.reqPerSec.toFixed(0)} req/s, p99 ${hot.p99.toFixed(1)} ms, deadlocks ${measured.get('H-org')!.deadlocks}`);
    }
    lines.push(`budget reconcile problems ${problems[0].n}`);
    console.log('\n' + lines.join('\n') + '\n');

    const broken = selected.filter((s) => measured.get(s.id)!.ok === 0);
    if (broken.length) {
      console.error(`harness broken: no successful response in ${broken.map((s) => s.id).join(', ')}; service log in ${logDir}`);
      return 1;
    }
    const deadlocked = selected.filter((s) => measured.get(s.id)!.deadlocks > 0);
    if (deadlocked.length || problems[0].n > 0) {
      console.error(`deadlocks in ${deadlocked.map((s) => s.id).join(', ') || 'none'}; budget reconcile problems ${problems[0].n}`);
      return 1;
    }
    fs.rmSync(logDir, { recursive: true, force: true });
    return 0;
  } finally {
    await stopAll();
    await stats?.end().catch(() => undefined);
    await database?.stop().catch(() => undefined);
  }
}

main().then(
  (code) => process.exit(code),
  (error) => {
    console.error('bench failed:', error instanceof Error ? (error.stack ?? error.message) : error);
    void stopAll().finally(() => process.exit(1));
  },
);
