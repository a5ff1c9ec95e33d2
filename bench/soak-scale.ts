/**
 * npm run soak:scale [-- --duration 600 --concurrency 12 --users 200]
 *
 * The "many instances" soak (docs/scaling.md): a streaming standby, PgBouncer in transaction mode, and three
 * `start:prod` processes with WEB_CONCURRENCY=2 each, driven by a bounded mixed load over loopback for
 * `--duration` seconds, then checked. It is a correctness soak, not a benchmark: no timing is asserted.
 *
 *  1. A throwaway primary and a real streaming standby (`pg_basebackup -R`, tests/support/pg-cluster.ts)
 *     from the machine's PostgreSQL server binaries, on free loopback ports: a physical standby copies a whole
 *     server, so it is made from a server of its own (a shared one would also need a replication entry in its
 *     pg_hba.conf). A database `soak_<id>` on it, migrated, `--users` users seeded with credits (bench/seed.ts).
 *  2. PgBouncer in transaction pooling mode in front of the primary (.ci/pgbouncer.sh).
 *  3. Three `node dist/src/server.js` (as `npm run start:prod`) with WEB_CONCURRENCY=2, DATABASE_URL through
 *     PgBouncer with DATABASE_PREPARED_STATEMENTS=false, DATABASE_REPLICA_URL on the standby.
 *  4. A closed-loop mixed load, each request round-robin over the three ports: initialize→finalize,
 *     initialize→abort, initialize→extend→finalize, usage records (some replayed with their Idempotency-Key),
 *     balances, statistics and lists (replica reads), admin grants; a tenth of the users have a small daily
 *     budget, so BUDGET_EXCEEDED refusals happen too.
 *  5. Checks: no 5xx and no connection error, no status an operation does not expect, GET /api/admin/reconcile
 *     ok with no discrepancies, the suite's own ledger check (tests/reliability/harness/checks.ts), no
 *     deadlock, no worker replaced, reads served by the replica (accounting_db_reads_total{target="replica"}
 *     on /metrics, and table scans counted by the standby itself); then SIGTERM to the three primaries, each
 *     must exit 0. Everything started is stopped and removed; the exit code is non-zero on any failure.
 *
 * Logs: .bench/soak-<time>/ (one file per process, PgBouncer's log copied there).
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import jwt from 'jsonwebtoken';
import { Client } from 'pg';
import { findFreePort } from '../src/db/embedded-postgres';
import { checkLedger } from '../tests/reliability/harness/checks';
import { call, type CallResult } from '../tests/reliability/harness/http';
import { startPrimaryWithStandby } from '../tests/support/pg-cluster';
import { USER_PREFIX } from './constants';
import { migrate } from './fresh-database';
import { startNode, stopAll, waitForHttp } from './processes';
import { seedUsers } from './seed';
import { productionNodeFlags } from './service-builds';

const ROOT = path.resolve(__dirname, '../..');
const JWT_SECRET = 'soak-secret-only-for-the-local-scale-soak-0123456789';
const METRICS_TOKEN = 'soak-metrics-token-not-a-secret';
const INSTANCES = 3;
const WORKERS = 2;
const MODEL = 'gpt-4o-mini';
/** A budgeted user's daily limit: about a dozen flows, so BUDGET_EXCEEDED refusals come within minutes. */
const BUDGET_CREDITS = 1;

interface Options {
  durationSec: number;
  concurrency: number;
  users: number;
}

function parseArgs(argv: string[]): Options {
  const options: Options = { durationSec: 600, concurrency: 12, users: 200 };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const bounded = (min: number, max: number) => {
      const n = Number(argv[++i]);
      if (!Number.isSafeInteger(n) || n < min || n > max) throw new Error(`${arg} must be a whole number from ${min} to ${max}`);
      return n;
    };
    if (arg === '--duration') options.durationSec = bounded(5, 3600);
    else if (arg === '--concurrency') options.concurrency = bounded(1, 200);
    else if (arg === '--users') options.users = bounded(10, 100_000);
    else throw new Error(`unknown argument ${arg} (use --duration, --concurrency, --users)`);
  }
  return options;
}

const log = (message: string) => console.log(`[soak ${new Date().toISOString().slice(11, 19)}] ${message}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const pick = <T>(items: readonly T[]): T => items[Math.floor(Math.random() * items.length)];
const randomInt = (min: number, max: number) => min + Math.floor(Math.random() * (max - min + 1));
const newId = (prefix: string) => `${prefix}-${crypto.randomUUID()}`;
const sign = (sub: string, role: string) => jwt.sign({ sub, role }, JWT_SECRET, { algorithm: 'HS256', expiresIn: '6h' });

/** Responses by operation and status, latencies, and samples of whatever an operation did not expect. */
class Counts {
  readonly byStatus = new Map<number, number>();
  readonly byOp = new Map<string, Map<string, number>>();
  readonly unexpected: string[] = [];
  unexpectedCount = 0;
  readonly latencies: number[] = [];

  add(op: string, result: CallResult, ms: number, expected: number[]): CallResult {
    this.latencies.push(ms);
    this.byStatus.set(result.status, (this.byStatus.get(result.status) ?? 0) + 1);
    const code = result.status >= 400 ? ` ${(result.json as { error?: { code?: string } })?.error?.code ?? result.error ?? ''}`.trimEnd() : '';
    const ops = this.byOp.get(op) ?? new Map<string, number>();
    this.byOp.set(op, ops);
    const key = `${result.status || 'none'}${code}`;
    ops.set(key, (ops.get(key) ?? 0) + 1);
    if (!expected.includes(result.status)) {
      this.unexpectedCount++;
      if (this.unexpected.length < 20) this.unexpected.push(`${op} → ${result.status || result.error}: ${result.text.slice(0, 300)}`);
    }
    return result;
  }

  /** A response with an expected status but the wrong content. */
  mismatch(what: string): void {
    this.unexpectedCount++;
    if (this.unexpected.length < 20) this.unexpected.push(what);
  }

  count(predicate: (status: number) => boolean): number {
    let n = 0;
    for (const [status, c] of this.byStatus) if (predicate(status)) n += c;
    return n;
  }
}

/** Pool of keep-alive sockets per target; idle ones close before the service's 5 s keep-alive timeout. */
const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity, timeout: 3_000 });

async function sqlOn<T extends Record<string, unknown>>(url: string, text: string, params: unknown[] = []): Promise<T[]> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(text, params)).rows as T[];
  } finally {
    await client.end();
  }
}

/** Sequential and index scans of the database's tables so far, as the server (here: the standby) counted them. */
async function tableScans(url: string): Promise<number> {
  const [row] = await sqlOn<{ n: string }>(url, `SELECT coalesce(sum(coalesce(seq_scan, 0) + coalesce(idx_scan, 0)), 0)::text AS n FROM pg_stat_user_tables`);
  return Number(row.n);
}

/** accounting_db_reads_total by target, from one /metrics answer (one worker's counters). */
function readsFrom(text: string): { replica: number; primary: number } {
  const value = (target: string) => Number(new RegExp(`^accounting_db_reads_total\\{target="${target}"\\} (\\d+)`, 'm').exec(text)?.[1] ?? 0);
  return { replica: value('replica'), primary: value('primary') };
}

function waitForExit(child: ChildProcess, ms: number): Promise<number | string> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(`still running after ${ms} ms`), ms);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve(code ?? `signal ${signal}`);
    });
  });
}

async function main(): Promise<number> {
  const options = parseArgs(process.argv.slice(2));
  const failures: string[] = [];
  const cleanups: Array<[string, () => Promise<void> | void]> = [];
  const stamp = new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19);
  const logDir = path.join(ROOT, '.bench', `soak-${stamp}`);
  fs.mkdirSync(logDir, { recursive: true });
  let interrupted = false;
  const onSignal = () => {
    interrupted = true;
    log('interrupted: stopping the load, then cleaning up');
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  try {
    // 1. Primary, standby, database.
    log('starting a primary and its streaming standby (pg_basebackup -R)');
    const cluster = await startPrimaryWithStandby();
    cleanups.push(['primary and standby', () => cluster.destroy()]);
    const dbName = `soak_${Date.now().toString(36)}_${process.pid}`;
    await sqlOn(cluster.primary.url('postgres'), `CREATE DATABASE ${dbName}`);
    const primaryUrl = cluster.primary.url(dbName);
    const standbyUrl = cluster.standby.url(dbName);
    await migrate(primaryUrl);
    await seedUsers(primaryUrl, options.users);
    log(`database ${dbName}: migrated, ${options.users} users seeded; primary :${cluster.primary.port}, standby :${cluster.standby.port}`);

    // 2. PgBouncer in front of the primary.
    const bouncerPort = await findFreePort();
    const bouncerDir = execFileSync('bash', [path.join(ROOT, '.ci/pgbouncer.sh')], {
      env: { ...process.env, PGBOUNCER_PORT: String(bouncerPort), PGBOUNCER_UPSTREAM_PORT: String(cluster.primary.port) },
      encoding: 'utf8',
    }).trim();
    cleanups.push([
      'pgbouncer',
      async () => {
        const pid = Number(fs.readFileSync(path.join(bouncerDir, 'pgbouncer.pid'), 'utf8').trim());
        try {
          process.kill(pid, 'SIGTERM');
        } catch {
          // already gone
        }
        for (let i = 0; i < 50; i++) {
          try {
            process.kill(pid, 0);
            await sleep(100);
          } catch {
            break;
          }
        }
        fs.copyFileSync(path.join(bouncerDir, 'pgbouncer.log'), path.join(logDir, 'pgbouncer.log'));
        fs.rmSync(bouncerDir, { recursive: true, force: true });
      },
    ]);
    log(`pgbouncer (transaction pooling) on :${bouncerPort}`);

    // 3. Three start:prod processes, two workers each.
    const ports = await Promise.all(Array.from({ length: INSTANCES }, () => findFreePort()));
    const urls = ports.map((p) => `http://127.0.0.1:${p}`);
    const server = path.join(ROOT, 'dist/src/server.js');
    if (!fs.existsSync(server)) throw new Error(`${server} is missing: npm run build first (npm run soak:scale does)`);
    const env = (port: number): NodeJS.ProcessEnv => ({
      PATH: process.env.PATH,
      NODE_ENV: 'production',
      HOST: '127.0.0.1',
      PORT: String(port),
      WEB_CONCURRENCY: String(WORKERS),
      DATABASE_URL: `postgres://postgres@127.0.0.1:${bouncerPort}/${dbName}`,
      DATABASE_PREPARED_STATEMENTS: 'false',
      DATABASE_REPLICA_URL: standbyUrl,
      DATABASE_POOL_MAX: '4',
      JWT_SECRET,
      METRICS_TOKEN,
      LOG_LEVEL: 'warn',
      // One user's requests may all land on one worker: the limits must not be what the soak measures.
      RATE_LIMIT_PER_USER_PER_MINUTE: '1000000',
      RATE_LIMIT_PER_IP_PER_MINUTE: '10000000',
    });
    const nodeFlags = productionNodeFlags(); // as `npm run start:prod` starts it
    const services = ports.map((port, i) => startNode(`service-${i + 1}`, server, env(port), path.join(logDir, `service-${i + 1}.log`), nodeFlags));
    cleanups.push(['services', () => stopAll()]);
    await Promise.all(services.map((child, i) => waitForHttp(`${urls[i]}/ready`, child, 90_000)));
    log(`3 start:prod processes × WEB_CONCURRENCY=${WORKERS} ready on :${ports.join(', :')} (through PgBouncer, replica on the standby)`);

    // Tokens, budgets.
    const users = Array.from({ length: options.users }, (_, i) => ({ id: `${USER_PREFIX}${i + 1}`, token: sign(`${USER_PREFIX}${i + 1}`, 'user') }));
    const admin = sign('soak-admin', 'admin');
    const budgeted = users.slice(0, Math.max(1, Math.floor(users.length / 10)));
    for (const user of budgeted) {
      const res = await call(urls[0], { method: 'POST', path: '/api/budgets', headers: { Authorization: `Bearer ${admin}` }, body: { scope: { userId: user.id }, period: 'day', limitCredits: BUDGET_CREDITS } });
      if (res.status !== 201) throw new Error(`creating a budget answered ${res.status}: ${res.text.slice(0, 300)}`);
    }
    const standbyScansBefore = await tableScans(standbyUrl);

    // 4. The load.
    const counts = new Counts();
    let next = 0;
    const target = () => urls[next++ % urls.length];
    const req = async (op: string, expected: number[], token: string, method: string, p: string, body?: unknown, headers: Record<string, string> = {}) => {
      const t0 = performance.now();
      const res = await call(target(), { method, path: p, body, agent, timeoutMs: 30_000, headers: { Authorization: `Bearer ${token}`, ...headers } });
      return counts.add(op, res, performance.now() - t0, expected);
    };
    const init = (user: { token: string }, sessionId: string) =>
      req('initialize', [201, 402], user.token, 'POST', '/api/streaming-sessions/initialize', {
        sessionId,
        modelId: MODEL,
        estimatedInputTokens: randomInt(500, 2_000),
        estimatedOutputTokens: randomInt(500, 2_000),
      });
    const finalizeBody = (sessionId: string) => ({ sessionId, actualInputTokens: randomInt(0, 2_500), actualOutputTokens: randomInt(0, 2_500) });

    const ops: Array<[number, () => Promise<unknown>]> = [
      [22, async () => {
        const user = pick(users);
        const sessionId = newId('flow');
        if ((await init(user, sessionId)).status === 201) await req('finalize', [200], user.token, 'POST', '/api/streaming-sessions/finalize', finalizeBody(sessionId));
      }],
      [6, async () => {
        const user = pick(users);
        const sessionId = newId('abort');
        if ((await init(user, sessionId)).status === 201) {
          await req('abort', [200], user.token, 'POST', '/api/streaming-sessions/abort', { sessionId, actualInputTokens: randomInt(0, 500), reason: 'soak' });
        }
      }],
      [6, async () => {
        const user = pick(users);
        const sessionId = newId('extend');
        if ((await init(user, sessionId)).status !== 201) return;
        await req('extend', [200, 402], user.token, 'POST', '/api/streaming-sessions/extend', { sessionId, ttlSeconds: 600, additionalOutputTokens: randomInt(100, 2_000) });
        await req('finalize', [200], user.token, 'POST', '/api/streaming-sessions/finalize', finalizeBody(sessionId));
      }],
      [10, async () => {
        const user = pick(users);
        const key = Math.random() < 0.3 ? newId('usage') : undefined;
        const body = Math.random() < 0.5
          ? { service: 'chat', operation: 'completion', credits: (randomInt(1, 20_000) / 1_000_000).toFixed(6) }
          : { service: 'embeddings', operation: 'embed', modelId: MODEL, inputTokens: randomInt(1, 5_000), outputTokens: 0 };
        const headers: Record<string, string> = key ? { 'Idempotency-Key': key } : {};
        const first = await req('usage record', [201, 402], user.token, 'POST', '/api/usage/record', body, headers);
        // The same key again, on the next instance: the first answer, not a second record.
        if (key && first.status === 201) {
          const again = await req('usage record replay', [201], user.token, 'POST', '/api/usage/record', body, headers);
          const id = (r: CallResult) => (r.json as { usageRecord?: { id?: string } })?.usageRecord?.id;
          if (again.status === 201 && id(again) !== id(first)) counts.mismatch(`usage record replay: ${id(first)} then ${id(again)}`);
        }
      }],
      [14, () => { const u = pick(users); return req('balance', [200], u.token, 'GET', '/api/credits/balance'); }],
      [5, () => { const u = pick(users); return req('stats', [200], u.token, 'GET', '/api/usage/stats'); }],
      [4, () => { const u = pick(users); return req('records', [200], u.token, 'GET', '/api/usage/records?limit=20'); }],
      [4, () => { const u = pick(users); return req('transactions', [200], u.token, 'GET', '/api/credits/transactions?limit=20'); }],
      [3, () => { const u = pick(users); return req('active', [200], u.token, 'GET', '/api/streaming-sessions/active'); }],
      [1, () => { const u = pick(budgeted); return req('budget status', [200], u.token, 'GET', '/api/budgets/status'); }],
      [2, () =>
        req('admin grant', [201], admin, 'POST', '/api/credits/allocate', { userId: pick(users).id, credits: randomInt(1, 20), note: 'soak' }, { 'Idempotency-Key': newId('grant') })],
    ];
    const totalWeight = ops.reduce((sum, [w]) => sum + w, 0);
    const chooseOp = () => {
      let r = Math.random() * totalWeight;
      for (const [w, op] of ops) if ((r -= w) < 0) return op;
      return ops[0][1];
    };

    log(`load: ${options.durationSec} s, concurrency ${options.concurrency}, round-robin over ${INSTANCES} ports`);
    const started = Date.now();
    const deadline = started + options.durationSec * 1000;
    let operations = 0;
    const progress = setInterval(() => {
      const s = (Date.now() - started) / 1000;
      log(`  ${s.toFixed(0)} s: ${counts.latencies.length} requests (${(counts.latencies.length / s).toFixed(0)}/s), 5xx ${counts.count((x) => x >= 500)}, no response ${counts.count((x) => x === 0)}, unexpected ${counts.unexpectedCount}`);
    }, 60_000);
    await Promise.all(
      Array.from({ length: options.concurrency }, async () => {
        while (Date.now() < deadline && !interrupted) {
          operations++;
          await chooseOp()();
        }
      }),
    );
    clearInterval(progress);
    const elapsedSec = (Date.now() - started) / 1000;
    agent.destroy();
    if (interrupted) failures.push('interrupted');

    // 5. Checks.
    const fivexx = counts.count((s) => s >= 500);
    const noResponse = counts.count((s) => s === 0);
    if (fivexx) failures.push(`${fivexx} responses were 5xx`);
    if (noResponse) failures.push(`${noResponse} requests got no response (connection errors or timeouts)`);
    if (counts.unexpectedCount) failures.push(`${counts.unexpectedCount} responses had a status their operation does not expect`);

    // Sessions a flow left active: none expected (every flow ends its session).
    const reconcile = await call(urls[0], { path: '/api/admin/reconcile', headers: { Authorization: `Bearer ${admin}` }, timeoutMs: 120_000 });
    const rec = reconcile.json as { ok?: boolean; checkedUsers?: number; checkedAllocations?: number; discrepancies?: unknown[] } | undefined;
    if (reconcile.status !== 200 || rec?.ok !== true || rec.discrepancies?.length !== 0) {
      failures.push(`GET /api/admin/reconcile answered ${reconcile.status}: ${reconcile.text.slice(0, 500)}`);
    }
    const ledger = await checkLedger({ sql: <T extends Record<string, unknown>>(text: string, params: unknown[] = []) => sqlOn<T>(primaryUrl, text, params) });
    if (!ledger.ok) failures.push(`ledger check: ${ledger.problems.slice(0, 5).join('; ')}`);
    const [db] = await sqlOn<Record<string, string>>(
      primaryUrl,
      `SELECT (SELECT deadlocks FROM pg_stat_database WHERE datname = current_database())::text AS deadlocks,
              (SELECT count(*) FROM streaming_sessions WHERE status = 'active')::text AS active,
              (SELECT count(*) FROM streaming_sessions)::text AS sessions,
              (SELECT count(*) FROM usage_records)::text AS usage_records,
              (SELECT count(*) FROM credit_transactions)::text AS ledger_rows,
              (SELECT count(*) FROM budget_counters)::text AS budget_counters`,
    );
    if (db.deadlocks !== '0') failures.push(`${db.deadlocks} deadlocks`);

    // Replica reads: each scrape is answered by one worker; once the load has stopped the counters are frozen,
    // so distinct answers are distinct workers. The standby's own transaction count says the same from its side.
    const seen = new Map<string, { replica: number; primary: number }>();
    for (const url of urls) {
      for (let i = 0; i < 8; i++) {
        const res = await call(url, { path: '/metrics', headers: { Authorization: `Bearer ${METRICS_TOKEN}`, Connection: 'close' }, agent: new http.Agent({ keepAlive: false }) });
        if (res.status !== 200) {
          failures.push(`/metrics on ${url} answered ${res.status}`);
          break;
        }
        const reads = readsFrom(res.text);
        seen.set(`${url} ${reads.replica} ${reads.primary}`, reads);
      }
    }
    const replicaReads = [...seen.values()].reduce((n, r) => n + r.replica, 0);
    const primaryReads = [...seen.values()].reduce((n, r) => n + r.primary, 0);
    if (replicaReads === 0) failures.push('accounting_db_reads_total{target="replica"} is 0 on every worker scraped');

    // Workers replaced during the soak would mean one died.
    const replaced = services.map((_, i) => (fs.readFileSync(path.join(logDir, `service-${i + 1}.log`), 'utf8').match(/worker exited: starting another/g) ?? []).length);
    if (replaced.some((n) => n > 0)) failures.push(`workers replaced during the soak: ${replaced.join('/')}`);

    // SIGTERM to each primary: every worker drains, the primary exits 0.
    for (const child of services) child.kill('SIGTERM');
    const exits = await Promise.all(services.map((child) => waitForExit(child, 30_000)));
    exits.forEach((code, i) => {
      if (code !== 0) failures.push(`service-${i + 1} exited ${code} after SIGTERM`);
    });
    // Read after the services closed their connections: a backend reports its table statistics at exit.
    const standbyScans = (await tableScans(standbyUrl)) - standbyScansBefore;
    if (standbyScans <= 0) failures.push('the standby counted no table scans in the soak database');
    const errorLines = services.map((_, i) => (fs.readFileSync(path.join(logDir, `service-${i + 1}.log`), 'utf8').match(/"level":(50|60)/g) ?? []).length);

    // Summary.
    const sorted = Float64Array.from(counts.latencies).sort();
    const pct = (p: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] : NaN);
    const statusLine = [...counts.byStatus.entries()].sort(([a], [b]) => a - b).map(([s, c]) => `${s || 'none'}:${c}`).join(' ');
    const classes = (['2xx', '3xx', '4xx', '5xx'] as const).map((c, i) => `${c} ${counts.count((s) => s >= (i + 2) * 100 && s < (i + 3) * 100)}`).join(', ');
    const perOp = [...counts.byOp.entries()].map(([op, m]) => `  ${op}: ${[...m.entries()].map(([k, n]) => `${k}:${n}`).join(' ')}`).join('\n');
    const share = replicaReads + primaryReads ? ((100 * replicaReads) / (replicaReads + primaryReads)).toFixed(1) : 'n/a';
    console.log(
      [
        '',
        `== soak:scale summary (${new Date().toISOString().slice(0, 16)}Z, commit ${gitCommit()})`,
        `setup: ${INSTANCES} start:prod processes × WEB_CONCURRENCY=${WORKERS} (pool 4 each) → PgBouncer (transaction, DATABASE_PREPARED_STATEMENTS=false) → primary; DATABASE_REPLICA_URL → streaming standby; ${options.users} users (${budgeted.length} with a ${BUDGET_CREDITS}-credit daily budget)`,
        `load: ${elapsedSec.toFixed(0)} s, concurrency ${options.concurrency}, ${operations} operations, ${counts.latencies.length} requests, ${(counts.latencies.length / elapsedSec).toFixed(0)} req/s`,
        `status: ${classes}; no response ${noResponse}; by status ${statusLine}; unexpected ${counts.unexpectedCount}`,
        `latency: p50 ${pct(50).toFixed(1)} ms, p99 ${pct(99).toFixed(1)} ms, max ${pct(100).toFixed(1)} ms`,
        `by operation:\n${perOp}`,
        `reconcile: ${reconcile.status} ok=${rec?.ok} checkedUsers=${rec?.checkedUsers} checkedAllocations=${rec?.checkedAllocations} discrepancies=${rec?.discrepancies?.length}; ledger check ${ledger.ok ? 'ok' : 'FAILED'} (${ledger.lots} lots); deadlocks ${db.deadlocks}`,
        `database: ${db.sessions} sessions (${db.active} still active), ${db.usage_records} usage records, ${db.ledger_rows} ledger rows, ${db.budget_counters} budget counter rows`,
        `replica: reads replica/primary ${replicaReads}/${primaryReads} (${share} % on the replica; ${seen.size} of ${INSTANCES * WORKERS} workers scraped), table scans on the standby ${standbyScans}`,
        `shutdown: exit codes ${exits.join('/')}; workers replaced ${replaced.join('/')}; error log lines ${errorLines.join('/')}`,
        `logs: ${path.relative(ROOT, logDir)}`,
        failures.length ? `RESULT: FAILED\n${failures.map((f) => `  - ${f}`).join('\n')}` : 'RESULT: PASSED',
      ].join('\n'),
    );
    if (counts.unexpected.length) console.log(`unexpected samples:\n${counts.unexpected.map((s) => `  ${s}`).join('\n')}`);
  } catch (error) {
    failures.push(error instanceof Error ? error.stack ?? error.message : String(error));
    console.error(`soak failed: ${failures[failures.length - 1]}`);
  } finally {
    for (const [what, cleanup] of cleanups.reverse()) {
      await Promise.resolve()
        .then(cleanup)
        .catch((error) => console.error(`cleanup of ${what} failed: ${error instanceof Error ? error.message : String(error)}`));
    }
  }
  return failures.length ? 1 : 0;
}

function gitCommit(): string {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}

main().then(
  (code) => process.exit(code),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
