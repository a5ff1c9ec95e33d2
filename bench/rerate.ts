/**
 * npm run bench:rerate [-- --records 100000 --users 1 --no-write]
 *
 * Re-rate over many usage records (issue 16): how long POST /api/admin/rerate takes, and the latency of
 * `initialize` of an affected user while it runs (the re-rate works in batches of 200 records per user
 * transaction, so a user's own requests should wait at most one batch: p99 ≤ 50 ms).
 *
 * A new database (on DATABASE_URL's server, or a throwaway embedded PostgreSQL), all migrations, then a bulk
 * SQL seed: `--users` users (default 1: every record belongs to the user whose initialize is measured, the
 * worst case), one lot each, `--records` usage records of one model at price version 1 spread over the last
 * 20 days, each paid by a `charge` ledger row, and their usage_daily rollups — a ledger that reconciles. The
 * app (createApp) listens on 127.0.0.1. One client loops initialize + abort on the affected user(s): first
 * alone (baseline), then while one admin re-rates every record to version 2 (dearer: each record is charged
 * its difference). Prints the figures; writes them into docs/credits.md between the rerate-bench markers
 * (unless --no-write); checks that reconcile is clean afterwards.
 */
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import jwt from 'jsonwebtoken';
import { Client } from 'pg';
import { benchRequest, migrate, startBenchApp, startFreshDatabase } from './fresh-database';

const JWT_SECRET = 'rerate-bench-secret-only-for-this-local-benchmark';
const MODEL = 'bench-rerate-model';
const USER_PREFIX = 'rerate-user-';
const BASELINE_MS = 5_000;

interface Options {
  records: number;
  users: number;
  write: boolean;
}

function parseArgs(argv: string[]): Options {
  const options: Options = { records: 100_000, users: 1, write: true };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const positive = (text: string) => {
      const n = Number(text);
      if (!Number.isSafeInteger(n) || n < 1) throw new Error(`${arg}: ${text} is not a positive integer`);
      return n;
    };
    if (arg === '--records') options.records = positive(argv[++i]);
    else if (arg === '--users') options.users = positive(argv[++i]);
    else if (arg === '--no-write') options.write = false;
    else throw new Error(`unknown argument ${arg}`);
  }
  return options;
}

/** Users, lots, records at version 1 with their charge rows and rollups, in one transaction. */
async function seed(url: string, options: Options): Promise<number> {
  const started = Date.now();
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    await client.query('BEGIN');
    await client.query(`SET LOCAL statement_timeout = 0`);
    // v1: 1 credit per 1M input, 2 per 1M output; v2 doubles both (effective earlier, so v1 stays the one
    // the seeded records were priced at and v2 exists to re-rate to).
    await client.query(
      `INSERT INTO model_prices (model_id, price_version, input_price_per_1m, output_price_per_1m, cached_input_price_per_1m, effective_from, created_by)
       VALUES ($1, 1, 1000000, 2000000, 500000, now() - interval '60 days', 'bench'),
              ($1, 2, 2000000, 4000000, 1000000, now() - interval '30 days', 'bench')`,
      [MODEL],
    );
    await client.query(`INSERT INTO user_accounts (id) SELECT $1 || i FROM generate_series(1, $2::int) i`, [USER_PREFIX, options.users]);
    await client.query(`SELECT acct_grant($1 || i, 1000000000000000, NULL, 'bench', 'rerate bench') FROM generate_series(1, $2::int) i`, [
      USER_PREFIX,
      options.users,
    ]);
    // Costs at v1: ceil((input - cached) x 1 + cached x 0.5 + output x 2) micro-credits per token... / 1M.
    await client.query(
      `INSERT INTO usage_records (user_id, service, operation, model_id, price_version, input_tokens, output_tokens,
                                  cached_input_tokens, credits, charged_credits, unpaid_credits, recorded_by, created_at)
       SELECT $1 || (1 + g % $2::int), 'chat', 'completion', $3, 1, t.input, t.output, t.cached, c.credits, c.credits, 0, 'bench',
              now() - interval '20 days' + (g::double precision / $4::int) * interval '19 days'
         FROM generate_series(1::bigint, $4::bigint) g
        CROSS JOIN LATERAL (SELECT 1000 + (g * 7919) % 4000 AS input, 200 + (g * 104729) % 1500 AS output, (g * 31) % 500 AS cached) t
        CROSS JOIN LATERAL (SELECT ((t.input - t.cached) * 1000000 + t.cached * 500000 + t.output * 2000000 + 999999) / 1000000 AS credits) c`,
      [USER_PREFIX, options.users, MODEL, options.records],
    );
    await client.query(
      `INSERT INTO credit_transactions (user_id, type, amount, allocation_id, usage_record_id, actor_id, created_at)
       SELECT u.user_id, 'charge', u.credits, a.id, u.id, 'bench', u.created_at
         FROM usage_records u JOIN credit_allocations a ON a.user_id = u.user_id
        WHERE u.model_id = $1`,
      [MODEL],
    );
    await client.query(
      `UPDATE credit_allocations a SET remaining_credits = a.remaining_credits - s.spent
         FROM (SELECT user_id, sum(credits) AS spent FROM usage_records WHERE model_id = $1 GROUP BY 1) s
        WHERE a.user_id = s.user_id`,
      [MODEL],
    );
    // The rollups, built from the records (the usage_daily trigger carries them to the derived ones).
    await client.query(
      `INSERT INTO usage_daily (user_id, day, service, operation, model_id, requests, credits, unpaid_credits,
                                input_tokens, output_tokens, cached_input_tokens)
       SELECT user_id, (created_at AT TIME ZONE 'UTC')::date, service, operation, model_id, count(*), sum(credits), 0,
              sum(input_tokens), sum(output_tokens), sum(cached_input_tokens)
         FROM usage_records WHERE model_id = $1 GROUP BY 1, 2, 3, 4, 5`,
      [MODEL],
    );
    await client.query('COMMIT');
    await client.query('ANALYZE');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    await client.end();
  }
  return Date.now() - started;
}

const token = (sub: string, role: string) => jwt.sign({ sub, role }, JWT_SECRET, { algorithm: 'HS256', expiresIn: '2h' });

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];

interface Latency {
  n: number;
  p50: number;
  p99: number;
  max: number;
}

const summarize = (times: number[]): Latency => {
  const sorted = [...times].sort((a, b) => a - b);
  return { n: sorted.length, p50: percentile(sorted, 50), p99: percentile(sorted, 99), max: sorted[sorted.length - 1] };
};

interface Result {
  seedMs: number;
  rerateMs: number;
  report: Record<string, unknown>;
  baseline: Latency;
  during: Latency;
  /** The user's row lock taken and released on a connection of its own (no HTTP): alone, during the re-rate. */
  lockBaseline: Latency;
  lockDuring: Latency;
  reconcileOk: boolean;
}

/** On a fresh, migrated database (bench/fresh-database.ts), dropped by the caller afterwards. */
async function measure(url: string, options: Options): Promise<Result> {
  await migrate(url);
  console.log(`seeding ${options.records.toLocaleString('en-US')} records for ${options.users} user(s)...`);
  const seedMs = await seed(url, options);

  const served = await startBenchApp(url, JWT_SECRET);
  const port = served.port;
  const userAgent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const adminAgent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const users = Array.from({ length: options.users }, (_, i) => token(`${USER_PREFIX}${i + 1}`, 'user'));
  const adminToken = token('rerate-bench-admin', 'admin');
  try {
    // One client, initialize then abort (only initialize is timed), rotating over the affected users.
    let stop = false;
    let k = 0;
    const loop = async (times: number[]) => {
      while (!stop) {
        const auth = users[k++ % users.length];
        const init = await benchRequest(port, 'POST', '/api/streaming-sessions/initialize', auth, { modelId: MODEL, estimatedCredits: 1 }, userAgent);
        if (init.status !== 201) throw new Error(`initialize answered ${init.status}: ${JSON.stringify(init.json)}`);
        times.push(init.ms);
        const abort = await benchRequest(port, 'POST', '/api/streaming-sessions/abort', auth, { sessionId: init.json.sessionId }, userAgent);
        if (abort.status !== 200) throw new Error(`abort answered ${abort.status}: ${JSON.stringify(abort.json)}`);
      }
    };

    // Next to it, a probe on its own connection takes the user's row lock (as every money request of the user
    // does first) and lets go at once: how long the re-rate makes the user's requests wait, without HTTP.
    const probe = new Client({ connectionString: url });
    await probe.connect();
    let probing = false;
    const probeLoop = async (times: number[]) => {
      while (probing) {
        const started = process.hrtime.bigint();
        await probe.query('BEGIN');
        await probe.query(`SELECT 1 FROM user_accounts WHERE id = $1 FOR UPDATE`, [`${USER_PREFIX}1`]);
        await probe.query('COMMIT');
        times.push(Number(process.hrtime.bigint() - started) / 1e6);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    };

    const warm: number[] = [];
    const warmup = loop(warm);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    stop = true;
    await warmup;

    const baselineTimes: number[] = [];
    const baselineLock: number[] = [];
    stop = false;
    probing = true;
    const baseline = Promise.all([loop(baselineTimes), probeLoop(baselineLock)]);
    await new Promise((resolve) => setTimeout(resolve, BASELINE_MS));
    stop = true;
    probing = false;
    await baseline;

    console.log('re-rating...');
    const duringTimes: number[] = [];
    const duringLock: number[] = [];
    stop = false;
    probing = true;
    const during = Promise.all([loop(duringTimes), probeLoop(duringLock)]);
    const rerate = await benchRequest(port, 'POST', '/api/admin/rerate', adminToken, {
      modelId: MODEL,
      fromPriceVersion: 1,
      toPriceVersion: 2,
      from: new Date(Date.now() - 30 * 86_400_000).toISOString(),
      to: new Date().toISOString(),
    }, adminAgent);
    stop = true;
    probing = false;
    await during;
    await probe.end();
    if (rerate.status !== 200) throw new Error(`rerate answered ${rerate.status}: ${JSON.stringify(rerate.json)}`);
    if (rerate.json.records !== options.records) throw new Error(`rerate re-rated ${String(rerate.json.records)} of ${options.records} records`);

    const reconcile = await new Promise<boolean>((resolve, reject) => {
      http
        .get({ host: '127.0.0.1', port, path: '/api/admin/reconcile', agent: adminAgent, headers: { Authorization: `Bearer ${adminToken}` } }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve((JSON.parse(Buffer.concat(chunks).toString('utf8')) as { ok: boolean }).ok === true));
        })
        .on('error', reject);
    });
    return {
      seedMs,
      rerateMs: rerate.ms,
      report: rerate.json,
      baseline: summarize(baselineTimes),
      during: summarize(duringTimes),
      lockBaseline: summarize(baselineLock),
      lockDuring: summarize(duringLock),
      reconcileOk: reconcile,
    };
  } finally {
    userAgent.destroy();
    adminAgent.destroy();
    await served.close();
  }
}

const ms = (n: number) => `${n.toFixed(1)} ms`;

function table(r: Result, options: Options, where: string): string {
  const perSecond = Math.round(options.records / (r.rerateMs / 1000));
  return [
    `| records | users | re-rate | records/s | | p50 / p99 / max, alone | p50 / p99 / max, during the re-rate |`,
    `|---:|---:|---:|---:|---|---|---|`,
    `| ${options.records.toLocaleString('en-US')} | ${options.users} | ${(r.rerateMs / 1000).toFixed(1)} s | ${perSecond.toLocaleString('en-US')} | ` +
      `initialize (HTTP) | ${ms(r.baseline.p50)} / ${ms(r.baseline.p99)} / ${ms(r.baseline.max)} (${r.baseline.n}) | ` +
      `${ms(r.during.p50)} / ${ms(r.during.p99)} / ${ms(r.during.max)} (${r.during.n}) |`,
    `| | | | | the user's row lock (SQL) | ${ms(r.lockBaseline.p50)} / ${ms(r.lockBaseline.p99)} / ${ms(r.lockBaseline.max)} (${r.lockBaseline.n}) | ` +
      `${ms(r.lockDuring.p50)} / ${ms(r.lockDuring.p99)} / ${ms(r.lockDuring.max)} (${r.lockDuring.n}) |`,
    '',
    `\`npm run bench:rerate -- --records ${options.records} --users ${options.users}\`: every record re-rated from version 1 to a dearer ` +
      `version 2 (report ${JSON.stringify(r.report)}), reconcile ${r.reconcileOk ? 'clean' : 'NOT clean'} afterwards; one client ` +
      `looping initialize + abort on the affected user${options.users > 1 ? 's' : ''}, and a probe taking and releasing the row lock ` +
      `of the first one every 5 ms (counts in parentheses); ${where}; ` +
      `${os.cpus().length} × ${os.cpus()[0]?.model.trim() ?? 'CPU'} (load average ${os.loadavg()[0].toFixed(1)} at the end), Node ${process.version}; ` +
      `${new Date().toISOString().slice(0, 10)}; ` +
      `seed ${(r.seedMs / 1000).toFixed(1)} s.`,
  ].join('\n');
}

function writeIntoDocs(text: string): void {
  const file = path.resolve(__dirname, '../docs/credits.md');
  if (!fs.existsSync(file)) return;
  const doc = fs.readFileSync(file, 'utf8');
  const start = '<!-- rerate-bench:start -->';
  const end = '<!-- rerate-bench:end -->';
  const a = doc.indexOf(start);
  const b = doc.indexOf(end);
  if (a < 0 || b < a) return;
  fs.writeFileSync(file, `${doc.slice(0, a + start.length)}\n${text}\n${doc.slice(b)}`);
  console.log(`written to ${path.relative(process.cwd(), file)}`);
}

async function main() {
  const options = parseArgs(process.argv.slice(2));
  const database = await startFreshDatabase();
  let result: Result;
  try {
    result = await measure(database.url, options);
  } finally {
    await database.stop();
  }
  const text = table(result, options, database.where);
  console.log(`\n${text}\n`);
  if (!result.reconcileOk) throw new Error('reconcile is not clean after the re-rate');
  if (options.write) writeIntoDocs(text);
  if (result.during.p99 > 50) {
    console.error(`initialize p99 during the re-rate is ${ms(result.during.p99)}: above the 50 ms bound`);
    process.exitCode = 1;
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
