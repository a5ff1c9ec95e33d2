/**
 * npm run bench [-- --duration 15 --rounds 3 --connections 50 --smoke --soak [--soak-seconds 300] --scenarios B1,S1
 *                   --cpu-prof --node-args "--trace-gc" --pool 10 --no-write]
 *
 * Builds nothing itself (the npm script runs `npm run build` first). Starts a fresh database, migrates
 * and seeds it, starts the compiled service as in production and the hand-written baseline (B1), and
 * drives both from a separate load-generator process. Prints the table and writes it into
 * docs/performance.md (not for --smoke). Exits non-zero only when the harness itself breaks.
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import { findFreePort } from '../src/db/embedded-postgres';
import { BENCH_JWT_SECRET, DEFAULT_POOL_MAX, USER_COUNT, userId } from './constants';
import { Probe, emptyDiagnostics, loadAverage } from './diagnostics';
import { migrate, startFreshDatabase, type FreshDatabase } from './fresh-database';
import { forkNode, RssSampler, startNode, stopAll, stopChild, waitForHttp } from './processes';
import type { LoadKind, LoadRequest, LoadResponse } from './protocol';
import { renderReport, writeResultsBlock, type RunReport, type ScenarioRow, type SoakSummary } from './report';
import { seedUsers } from './seed';
import { METRICS_TOKEN, nodeFlagsOf, parseServiceBuild, productionNodeFlags, ROOT, serviceEnv, type ServiceBuild } from './service-builds';

const OUT_DIR = path.join(ROOT, '.bench');

interface Options {
  durationSec: number;
  rounds: number;
  warmupSec: number;
  connections: number;
  poolMax: number;
  smoke: boolean;
  soak: boolean;
  soakSec: number;
  only?: Set<string>;
  cpuProf: boolean;
  /** Extra node flags for the service only (e.g. "--trace-gc" or "--max-old-space-size=96"). */
  nodeArgs: string[];
  write: boolean;
  /** Other builds or settings of the service run in the same run (lever comparisons), see parseVariant. */
  variants: Variant[];
  variantScenarios: Set<string>;
}

/**
 * `--variant name=<root>[:KEY=VALUE,KEY=VALUE]`: one more service instance (bench/service-builds.ts) on the
 * same database. Its scenarios (`--variant-scenarios`, default S1,S3,S5,SH) run as `<id>@<name>` in the same
 * rounds, so a lever's before and after are measured within one run. Repeat the flag for more variants.
 */
type Variant = ServiceBuild;

function parseArgs(argv: string[]): Options {
  const value = (name: string) => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const has = (name: string) => argv.includes(`--${name}`);
  const num = (name: string, fallback: number, min: number, max: number) => {
    const raw = value(name);
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!Number.isFinite(n) || n < min || n > max) throw new Error(`--${name} must be a number between ${min} and ${max}`);
    return n;
  };
  const smoke = has('smoke');
  const scenarios = value('scenarios');
  return {
    smoke,
    durationSec: num('duration', smoke ? 2 : 15, 1, 600),
    rounds: num('rounds', smoke ? 1 : 3, 1, 20),
    warmupSec: smoke ? 1 : 3,
    connections: num('connections', 50, 1, 1000),
    poolMax: num('pool', Number(process.env.DATABASE_POOL_MAX ?? DEFAULT_POOL_MAX), 1, 200),
    soak: has('soak'),
    soakSec: num('soak-seconds', 300, 10, 3600),
    only: scenarios ? new Set(scenarios.split(',').map((s) => s.trim().toUpperCase())) : undefined,
    cpuProf: has('cpu-prof'),
    nodeArgs: (value('node-args') ?? '').split(' ').filter(Boolean),
    write: !smoke && !has('no-write'),
    variants: argv.flatMap((a, i) => (a === '--variant' ? [parseServiceBuild(argv[i + 1] ?? '')] : [])),
    variantScenarios: new Set((value('variant-scenarios') ?? 'S1,S3,S5,SH').split(',').map((x) => x.trim().toUpperCase())),
  };
}

interface ScenarioSpec {
  id: string;
  title: string;
  /** What takes the load: the service, the hand-written baselines, or PostgreSQL itself (P0). */
  server: 'service' | 'baseline' | 'database';
  kind: LoadKind;
  path?: string;
  needs: Endpoint[];
  /** Concurrency: the load's connections (default), or the pool size (P0: as many as the service's pool). */
  connections?: 'pool';
}

type Endpoint = 'initialize' | 'finalize' | 'balance';

const SCENARIOS: ScenarioSpec[] = [
  { id: 'P0', title: "database ceiling: initialize's statement from plain pg clients, one per pooled connection", server: 'database', kind: 'statement-loop', needs: [], connections: 'pool' },
  { id: 'H0', title: 'baseline: bare Express GET /health', server: 'baseline', kind: 'get', path: '/health', needs: [] },
  { id: 'I0', title: "baseline: minimal Express handler, JWT verify + initialize's statement (prepared, same pool size)", server: 'baseline', kind: 'baseline-initialize', needs: [] },
  { id: 'I3', title: "baseline: I0's handler and a minimal finalize handler (finalize's statement), as flows (req/s counts both)", server: 'baseline', kind: 'baseline-flow', needs: [] },
  { id: 'B1', title: 'baseline: hold transaction (Express + jsonwebtoken + pg prepared statements)', server: 'baseline', kind: 'baseline-hold', needs: [] },
  { id: 'S1', title: 'initialize, random users', server: 'service', kind: 'initialize', needs: ['initialize'] },
  { id: 'S2', title: "finalize of S1's sessions", server: 'service', kind: 'finalize-opened', needs: ['finalize'] },
  { id: 'S3', title: 'initialize→finalize flows, random users', server: 'service', kind: 'flow', needs: ['initialize', 'finalize'] },
  { id: 'S4', title: 'initialize, one hot user', server: 'service', kind: 'initialize-hot', needs: ['initialize'] },
  { id: 'S5', title: 'GET /api/credits/balance, random users', server: 'service', kind: 'get', path: '/api/credits/balance', needs: ['balance'] },
  { id: 'SH', title: "the service's GET /health (its middleware stack, no auth, no database)", server: 'service', kind: 'get', path: '/health', needs: [] },
];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
let interrupted = false;
const log = (message: string) => console.log(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}`);

/** Which of the hot-path endpoints the running service has (they arrive from other branches). */
async function probeEndpoints(serviceUrl: string, auth: string): Promise<Set<Endpoint>> {
  const found = new Set<Endpoint>();
  const post = (p: string) =>
    fetch(serviceUrl + p, { method: 'POST', headers: { authorization: auth, 'content-type': 'application/json' }, body: '{}' });
  if ((await post('/api/streaming-sessions/initialize')).status !== 404) found.add('initialize');
  if ((await post('/api/streaming-sessions/finalize')).status !== 404) found.add('finalize');
  if ((await fetch(serviceUrl + '/api/credits/balance', { headers: { authorization: auth } })).status === 200) found.add('balance');
  return found;
}

async function deadlocks(client: Client): Promise<number> {
  const { rows } = await client.query<{ deadlocks: string }>('SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()');
  return Number(rows[0]?.deadlocks ?? 0);
}

function gitCommit(): string {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}

/** Keeps the newest `keep` run directories in .bench (logs, reports, profiles). */
function pruneOldRuns(keep: number): void {
  const runs = fs
    .readdirSync(OUT_DIR)
    .filter((name) => name.startsWith('run-'))
    .map((name) => ({ name, at: fs.statSync(path.join(OUT_DIR, name)).mtimeMs }))
    .sort((a, b) => b.at - a.at);
  for (const old of runs.slice(keep - 1)) fs.rmSync(path.join(OUT_DIR, old.name), { recursive: true, force: true });
}

class Loader {
  private pending: ((r: LoadResponse) => void) | null = null;
  private readyUsers: Promise<number>;

  constructor(readonly child: ChildProcess) {
    this.readyUsers = new Promise((resolve, reject) => {
      child.once('exit', (code) => {
        const error = new Error(`load generator exited (code ${code})`);
        reject(error);
        this.pending?.({ type: 'failed', error: error.message });
      });
      child.on('message', (raw) => {
        const msg = raw as LoadResponse;
        if (msg.type === 'ready') resolve(msg.users);
        else this.pending?.(msg);
      });
    });
  }

  ready(): Promise<number> {
    return this.readyUsers;
  }

  /** Runs one scenario; bounded by its duration plus a minute. */
  ask(msg: LoadRequest, timeoutMs: number): Promise<LoadResponse> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('load generator did not answer in time')), timeoutMs);
      this.pending = (r) => {
        clearTimeout(timer);
        this.pending = null;
        resolve(r);
      };
      this.child.send(msg);
    });
  }
}

async function main(): Promise<number> {
  const options = parseArgs(process.argv.slice(2));
  const command = `npm run bench${process.argv.length > 2 ? ' -- ' + process.argv.slice(2).join(' ') : ''}`;
  fs.mkdirSync(OUT_DIR, { recursive: true });
  pruneOldRuns(10);
  const logDir = fs.mkdtempSync(path.join(OUT_DIR, 'run-'));
  const userCount = Number(process.env.BENCH_USER_COUNT ?? USER_COUNT);
  const startLoad = loadAverage();

  let database: FreshDatabase | undefined;
  let stats: Client | undefined;
  const cleanup = async () => {
    await stopAll();
    await stats?.end().catch(() => undefined);
    await database?.stop().catch(() => undefined);
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      if (interrupted) return;
      interrupted = true;
      log(`${signal}: stopping every child process`);
      void cleanup().finally(() => process.exit(130));
    });
  }

  try {
    log(`fresh database (${process.env.DATABASE_URL ? 'new database on DATABASE_URL' : 'embedded PostgreSQL in a temp dir'})`);
    database = await startFreshDatabase();
    await migrate(database.url);
    const seedStart = Date.now();
    await seedUsers(database.url, userCount);
    log(`migrated; seeded ${userCount} users + 1 hot user in ${Date.now() - seedStart} ms`);
    stats = new Client({ connectionString: database.url });
    stats.on('error', () => undefined); // the server going away on Ctrl-C must not crash the cleanup
    await stats.connect();
    const probePids: { loader?: number } = {};
    const probe = new Probe(stats, probePids, METRICS_TOKEN);
    await probe.enable(new URL(database.url).pathname.slice(1));

    const [servicePort, baselinePort] = [await findFreePort(), await findFreePort()];
    const serviceUrl = `http://127.0.0.1:${servicePort}`;
    const baselineUrl = `http://127.0.0.1:${baselinePort}`;
    const baseEnv = { PATH: process.env.PATH, HOME: process.env.HOME, TMPDIR: process.env.TMPDIR };
    const profileDir = path.join(logDir, 'profiles');
    const service = startNode(
      'service',
      path.join(ROOT, 'dist/src/server.js'),
      serviceEnv(servicePort, database.url, options.poolMax),
      path.join(logDir, 'service.log'),
      [...productionNodeFlags(), ...options.nodeArgs, ...(options.cpuProf ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : [])],
    );
    const variants: { variant: Variant; url: string; child: ChildProcess }[] = [];
    for (const variant of options.variants) {
      const port = await findFreePort();
      const child = startNode(`service@${variant.name}`, path.join(variant.root, 'dist/src/server.js'), serviceEnv(port, database.url, options.poolMax, variant.env), path.join(logDir, `service@${variant.name}.log`), [
        ...nodeFlagsOf(variant),
        ...options.nodeArgs,
        ...(options.cpuProf ? ['--cpu-prof', '--cpu-prof-dir', path.join(profileDir, variant.name)] : []),
      ]);
      variants.push({ variant, url: `http://127.0.0.1:${port}`, child });
      log(`variant ${variant.name}: ${variant.root}/dist/src/server.js ${JSON.stringify(variant.env)} (pid ${child.pid}) on port ${port}`);
    }
    await Promise.all(variants.map((v) => waitForHttp(`${v.url}/ready`, v.child)));
    const baseline = startNode(
      'baseline',
      path.join(ROOT, 'dist/bench/baseline-server.js'),
      { ...baseEnv, NODE_ENV: 'production', HOST: '127.0.0.1', PORT: String(baselinePort), DATABASE_URL: database.url, POOL_MAX: String(options.poolMax), JWT_SECRET: BENCH_JWT_SECRET },
      path.join(logDir, 'baseline.log'),
      options.cpuProf ? ['--cpu-prof', '--cpu-prof-dir', path.join(profileDir, 'baseline')] : [],
    );
    await Promise.all([waitForHttp(`${serviceUrl}/ready`, service), waitForHttp(`${baselineUrl}/ready`, baseline)]);
    const rss = new RssSampler(service.pid!);
    log(`service: node ${[...productionNodeFlags(), ...options.nodeArgs].join(' ')} dist/src/server.js`);
    log(`service (pid ${service.pid}) on ${serviceUrl}, baseline (pid ${baseline.pid}) on ${baselineUrl}; logs in ${path.relative(ROOT, logDir)}`);

    const loader = new Loader(forkNode('load generator', path.join(__dirname, 'load.js'), { ...baseEnv, BENCH_USER_COUNT: String(userCount), BENCH_TOKEN_KINDS: process.env.BENCH_TOKEN_KINDS ?? '', BENCH_TOKEN_ORG: process.env.BENCH_TOKEN_ORG ?? '' }));
    probePids.loader = loader.child.pid;
    const signedUsers = await loader.ready();
    const { default: jwt } = await import('jsonwebtoken');
    const probeAuth = `Bearer ${jwt.sign({ sub: userId(1), role: 'user' }, BENCH_JWT_SECRET, { algorithm: 'HS256', expiresIn: '1h' })}`;
    const endpoints = await probeEndpoints(serviceUrl, probeAuth);
    log(`load generator ready (${signedUsers} pre-signed tokens); service endpoints present: ${[...endpoints].join(', ') || 'none of initialize/finalize/balance'}`);

    const runLoad = async (id: string, kind: LoadKind, url: string, seconds: number, p?: string, connections = options.connections) => {
      const answer = await loader.ask({ type: 'run', id, kind, url, path: p, connections, durationSec: seconds }, (seconds + 60) * 1000);
      if (answer.type === 'failed') throw new Error(`load generator failed: ${answer.error}`);
      return answer;
    };

    // Warm both servers up (JIT, pools, caches) so the first measured scenario is not penalised.
    const serviceWarmKind: LoadKind = endpoints.has('initialize') && endpoints.has('finalize') ? 'flow' : 'get';
    const warmPath = endpoints.has('balance') ? '/api/credits/balance' : '/api/me';
    log(`warm-up ${options.warmupSec} s each`);
    await runLoad('warm-up B1', 'baseline-hold', baselineUrl, options.warmupSec);
    await runLoad('warm-up I0', 'baseline-initialize', baselineUrl, options.warmupSec);
    await runLoad('warm-up I3', 'baseline-flow', baselineUrl, options.warmupSec);
    await runLoad('warm-up service', serviceWarmKind, serviceUrl, options.warmupSec, warmPath);
    for (const v of variants) await runLoad(`warm-up ${v.variant.name}`, serviceWarmKind, v.url, options.warmupSec, warmPath);
    // Statistics as a database in service has them. The seed's ANALYZE saw empty session, usage and ledger
    // tables; until autovacuum (once a minute) analyzes them again, the plans every pooled connection cached
    // for the rows the warm-up wrote (foreign-key checks included) may scan whole tables, so the first
    // round of each scenario measured whether autovacuum had come by yet. ANALYZE invalidates those plans.
    await stats.query('VACUUM ANALYZE');

    // Which scenarios run, and against what; the others get a row saying why not.
    const rows: ScenarioRow[] = [];
    const plan: { spec: ScenarioSpec; row: ScenarioRow; path?: string; variant?: (typeof variants)[number] }[] = [];
    for (const spec of SCENARIOS) {
      const row: ScenarioRow = { id: spec.id, title: spec.title };
      rows.push(row);
      let kindPath = spec.path;
      const missing = spec.needs.filter((e) => !endpoints.has(e));
      if (spec.id === 'S5' && missing.length) {
        // Until the credits branch lands, GET /api/me (auth + user mirror + one read) stands in.
        row.title = 'GET /api/me (stand-in: /api/credits/balance not in this build)';
        kindPath = '/api/me';
      } else if (missing.length) {
        row.skipped = `needs ${missing.join(', ')}`;
        continue;
      }
      if (options.only && !options.only.has(spec.id)) row.skipped = 'not selected (--scenarios)';
      else if (spec.id === 'S2' && !plan.some((p) => p.spec.id === 'S1')) row.skipped = 'needs S1 in the same run';
      else plan.push({ spec, row, path: kindPath });
    }
    // Each variant's scenarios right after the main service's, so the comparison shares its neighbours' load.
    for (const v of variants) {
      for (const entry of plan.filter((p) => p.spec.server === 'service' && !p.variant && options.variantScenarios.has(p.spec.id))) {
        const row: ScenarioRow = { id: `${entry.spec.id}@${v.variant.name}`, title: `${entry.row.title} — variant ${v.variant.name}` };
        // S2 finalizes what the S1 just before it opened: a variant's S1 goes after S2.
        const s2 = entry.spec.id === 'S1' ? plan.find((p) => p.spec.id === 'S2' && !p.variant) : undefined;
        const after = s2 ?? entry;
        rows.splice(rows.indexOf(after.row) + 1 + variants.indexOf(v), 0, row);
        plan.splice(plan.indexOf(after) + 1 + variants.indexOf(v), 0, { spec: entry.spec, row, path: entry.path, variant: v });
      }
    }

    // Rounds: every scenario runs for duration/rounds, the whole list repeated `rounds` times, so that a
    // neighbour's load on this shared machine hits the baseline and the service alike; results are summed.
    // Every other round runs the list backwards (A B B A): what drifts during a run — tables and WAL growing,
    // autovacuum and checkpoints catching up after the writing scenarios, a heap that has grown — then lands
    // on each scenario's neighbours from both sides instead of always on the one that comes next. S2 stays
    // right after the S1 whose sessions it finalizes.
    const slice = options.durationSec / options.rounds;
    const units: (typeof plan)[] = [];
    for (const entry of plan) {
      if (entry.spec.id === 'S2' && !entry.variant && units.length > 0) units[units.length - 1].push(entry);
      else units.push([entry]);
    }
    for (let round = 1; round <= options.rounds; round++) {
      const order = (round % 2 === 1 ? units : [...units].reverse()).flat();
      for (const { spec, row, path: kindPath, variant } of order) {
        const deadlocksBefore = await deadlocks(stats);
        const serverPid = variant ? variant.child.pid : spec.server === 'service' ? service.pid : spec.server === 'baseline' ? baseline.pid : undefined;
        const scrapeUrl = variant ? variant.url : spec.server === 'service' ? serviceUrl : undefined;
        const load = loadAverage();
        const before = await probe.snapshot(serverPid, scrapeUrl);
        const [requestsBefore, secondsBefore] = [row.result?.requests ?? 0, row.result?.seconds ?? 0];
        const from = Date.now();
        log(`round ${round}/${options.rounds} ${spec.id}: ${row.title} (${slice} s, load average ${load})`);
        const target = variant ? variant.url : spec.server === 'service' ? serviceUrl : spec.server === 'baseline' ? baselineUrl : database.url;
        const answer = await runLoad(row.id, spec.kind, target, slice, kindPath, spec.connections === 'pool' ? options.poolMax : options.connections);
        if (answer.type === 'skipped') {
          row.skipped ??= answer.reason;
          continue;
        }
        if (answer.type !== 'result') continue;
        row.result = answer.result;
        if (spec.server === 'service' && !variant) {
          const peak = Math.max(...rss.samples.filter((s) => s.at >= from).map((s) => s.rssKb)) / 1024;
          row.peakRssMb = Math.max(row.peakRssMb ?? 0, peak);
        }
        await sleep(1_500); // pg_stat counters are flushed about once a second (an idle backend within ~1 s)
        row.deadlocks = (row.deadlocks ?? 0) + (await deadlocks(stats)) - deadlocksBefore;
        const after = await probe.snapshot(serverPid, scrapeUrl);
        Probe.add((row.diagnostics ??= emptyDiagnostics()), before, after, answer.result.requests - requestsBefore, answer.result.seconds - secondsBefore, load);
        const r = answer.result;
        log(`${spec.id} so far: ${r.reqPerSec.toFixed(0)} req/s, p50 ${r.p50.toFixed(1)} ms, p99 ${r.p99.toFixed(1)} ms, non-2xx ${r.non2xx}`);
      }
    }
    for (const { row } of plan) if (row.result) delete row.skipped;

    let soak: SoakSummary | undefined;
    if (options.soak) {
      const seconds = options.smoke ? Math.min(options.soakSec, 20) : options.soakSec;
      const window = Math.min(30_000, (seconds * 1000) / 4);
      log(`soak: ${seconds} s mixed (initialize → finalize → balance)`);
      const start = Date.now();
      const answer = await runLoad('soak', serviceWarmKind === 'flow' ? 'mixed' : 'get', serviceUrl, seconds, warmPath);
      const end = Date.now();
      if (answer.type === 'result') {
        const startRss = rss.meanBetween(start, start + window) / 1024;
        const endRss = rss.meanBetween(end - window, end) / 1024;
        soak = {
          seconds,
          startRssMb: startRss,
          endRssMb: endRss,
          peakRssMb: Math.max(...rss.samples.filter((s) => s.at >= start).map((s) => s.rssKb)) / 1024,
          growthPct: (endRss / startRss - 1) * 100,
          result: answer.result,
        };
      }
    }

    rss.stop();
    await loader.ask({ type: 'stop' }, 5_000).catch(() => undefined);
    await stopChild(service, 15_000);
    for (const v of variants) await stopChild(v.child, 15_000);
    await stopChild(baseline);

    const report: RunReport = {
      command,
      date: new Date().toISOString(),
      loadAverage: `${startLoad} at the start, ${loadAverage()} at the end`,
      commit: gitCommit(),
      node: process.version,
      cpus: os.cpus().length,
      database: database.where,
      connections: options.connections,
      durationSec: options.durationSec,
      rounds: options.rounds,
      poolMax: options.poolMax,
      rows,
      servicePeakRssMb: rss.peakRssKb / 1024,
      serviceHwmMb: rss.hwmKb / 1024,
      soak,
    };
    const markdown = renderReport(report);
    console.log('\n' + markdown + '\n');
    fs.writeFileSync(path.join(logDir, 'report.json'), JSON.stringify(report, null, 2));
    fs.writeFileSync(path.join(logDir, 'report.md'), markdown + '\n');
    if (options.write) {
      writeResultsBlock(path.join(ROOT, 'docs/performance.md'), markdown);
      log('results written to docs/performance.md');
    }
    if (options.cpuProf) log(`CPU profile of the service in ${path.relative(ROOT, profileDir)}, of the baselines (H0, I0, B1) in ${path.relative(ROOT, profileDir)}/baseline`);

    // A scenario that ran but got no 2xx at all means the harness sends requests the service rejects.
    const broken = rows.filter((r) => r.result && r.result.ok === 0);
    if (broken.length) {
      console.error(`harness broken: no successful response in ${broken.map((r) => r.id).join(', ')}`);
      return 1;
    }
    return 0;
  } finally {
    await cleanup();
  }
}

main().then(
  (code) => process.exit(code),
  (error) => {
    if (interrupted) return; // the signal handler cleans up and exits
    console.error('bench failed:', error instanceof Error ? error.stack ?? error.message : error);
    void stopAll().finally(() => process.exit(1));
  },
);
