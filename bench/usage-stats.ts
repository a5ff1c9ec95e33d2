/**
 * npm run bench:usage [-- --sizes 10000,100000,1000000 --user-requests 200 --system-requests 100 --no-write]
 *                     [--unpartitioned-sizes 1000000] [--inserts 1000] [--keep] [--reuse] [--seed-only]
 *
 * Latency of GET /api/usage/stats (a user's own, default range: the last 30 days) and
 * GET /api/usage/system-stats (admin) over HTTP against the real app, at several sizes of usage_records.
 * For each size: a new database (on DATABASE_URL's server, or a throwaway embedded PostgreSQL), all
 * migrations, `seedUsage` (1,000 users, records over the last 90 days), the app from createApp listening
 * on 127.0.0.1, a warm-up, then N sequential requests of each kind. Prints p50/p99 and writes the table
 * into docs/usage.md between the usage-bench markers (unless --no-write).
 *
 * Partitioning (issue 18, docs/scaling.md "Partitions"): --sizes run on the latest (partitioned) schema;
 * --unpartitioned-sizes on a database migrated only up to the migration before the partitioning one, so
 * one run compares both. Each size also measures the insert cost: --inserts sequential calls of the
 * function behind POST /api/usage (acct_record_charged_usage, one record each, for the sampled users).
 * --keep leaves the databases (named bench_usage_<size>_<p|u>, with --db-prefix before it) and --reuse
 * measures an existing one without seeding it again, so seeding (long, under a shared machine lock) and
 * measuring (under an exclusive one) can be two runs; --seed-only stops after seeding.
 * --days-per-million N spreads each size's records over N days per million records (at least 90), so a
 * bigger size is a longer history at the same activity per user and day — how these tables really grow —
 * instead of the same 90 days ten times as dense (which grows the rollups the statistics read).
 */
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import jwt from 'jsonwebtoken';
import { Client } from 'pg';
import { createDatabase } from '../src/db/database';
import { startEmbeddedPostgres } from '../src/db/embedded-postgres';
import { migrateToLatest, migrateUpTo } from '../src/db/migrator';
import { SEED_USER_PREFIX, seedUsage } from '../scripts/seed-usage';
import { startBenchApp } from './fresh-database';

const JWT_SECRET = 'usage-bench-secret-only-for-this-local-benchmark';
const USERS = 1000;
const DAYS = 90;
/** Distinct users the user-stats requests rotate over: the heaviest (user 1) and 19 drawn at random. */
const SAMPLED_USERS = 20;
const WARMUP_ROUNDS = 2;
/** The last migration before usage_records, credit_transactions and events were partitioned. */
const BEFORE_PARTITIONING = '20261130006203_corrections_rerate_index';
const SEED_CHUNK = 500_000;

interface Options {
  sizes: number[];
  unpartitionedSizes: number[];
  inserts: number;
  keep: boolean;
  reuse: boolean;
  seedOnly: boolean;
  dbPrefix: string;
  userRequests: number;
  systemRequests: number;
  write: boolean;
  daysPerMillion: number;
}

function parseArgs(argv: string[]): Options {
  const options: Options = {
    sizes: [10_000, 100_000, 1_000_000],
    unpartitionedSizes: [],
    inserts: 1000,
    keep: false,
    reuse: false,
    seedOnly: false,
    dbPrefix: 'acct',
    userRequests: 200,
    systemRequests: 100,
    write: true,
    daysPerMillion: 0,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const positive = (text: string) => {
      const n = Number(text);
      if (!Number.isSafeInteger(n) || n < 1) throw new Error(`${arg}: ${text} is not a positive integer`);
      return n;
    };
    if (arg === '--sizes') options.sizes = argv[++i].split(',').map(positive);
    else if (arg === '--user-requests') options.userRequests = positive(argv[++i]);
    else if (arg === '--system-requests') options.systemRequests = positive(argv[++i]);
    else if (arg === '--no-write') options.write = false;
    else if (arg === '--unpartitioned-sizes') options.unpartitionedSizes = argv[++i].split(',').map(positive);
    else if (arg === '--inserts') options.inserts = positive(argv[++i]);
    else if (arg === '--keep') options.keep = true;
    else if (arg === '--reuse') options.reuse = true;
    else if (arg === '--seed-only') options.seedOnly = true;
    else if (arg === '--days-per-million') options.daysPerMillion = positive(argv[++i]);
    else if (arg === '--db-prefix') {
      options.dbPrefix = argv[++i];
      if (!/^[a-z][a-z0-9_-]{0,30}$/.test(options.dbPrefix)) throw new Error(`--db-prefix ${options.dbPrefix}: letters, digits, _ and - only`);
    }
    else throw new Error(`unknown argument ${arg}`);
  }
  return options;
}

const withDatabase = (url: string, database: string) => {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
};

async function startServer(): Promise<{ adminUrl: string; where: string; stop(): Promise<void> }> {
  const serverUrl = process.env.DATABASE_URL?.trim();
  if (serverUrl) return { adminUrl: serverUrl, where: new URL(serverUrl).host, stop: async () => undefined };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'acct-usage-bench-'));
  fs.chmodSync(dir, 0o755);
  const embedded = await startEmbeddedPostgres({ dataDir: path.join(dir, 'data'), persistent: false });
  return {
    adminUrl: embedded.url,
    where: 'embedded PostgreSQL',
    async stop() {
      await embedded.stop().catch(() => undefined);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function admin(url: string, sql: string): Promise<void> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

/** A tiny deterministic PRNG (mulberry32), so every run asks for the same users. */
function prng(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const token = (sub: string, role: string) => jwt.sign({ sub, role }, JWT_SECRET, { algorithm: 'HS256', expiresIn: '1h' });

function get(agent: http.Agent, port: number, urlPath: string, auth: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const req = http.get({ host: '127.0.0.1', port, path: urlPath, agent, headers: { Authorization: `Bearer ${auth}` } }, (res) => {
      res.resume();
      res.on('end', () => {
        if (res.statusCode !== 200) reject(new Error(`GET ${urlPath} answered ${res.statusCode}`));
        else resolve(Number(process.hrtime.bigint() - started) / 1e6);
      });
    });
    req.on('error', reject);
  });
}

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];

interface Row {
  records: number;
  days: number;
  schema: 'partitioned' | 'unpartitioned';
  partitions: number;
  insert: { p50: number; p99: number; perSecond: number };
  seedSeconds: number;
  usageDailyRows: number;
  userDailyRowsInRange: number;
  user: { p50: number; p99: number };
  system: { p50: number; p99: number };
}

async function databaseExists(adminUrl: string, name: string): Promise<boolean> {
  const client = new Client({ connectionString: adminUrl });
  await client.connect();
  try {
    return (await client.query(`SELECT 1 FROM pg_database WHERE datname = $1`, [name])).rowCount === 1;
  } finally {
    await client.end();
  }
}

/** Per-record insert cost: `n` sequential calls of acct_record_charged_usage (one record each) over the users. */
async function measureInserts(url: string, n: number, users: string[]): Promise<Row['insert']> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    const sql = `SELECT usage_record_id FROM acct_record_charged_usage($1, 'chat', 'completion', 'gpt-4o', NULL, 1200, 300, 0, 1500, NULL, $1)`;
    for (let i = 0; i < 20; i++) await client.query(sql, [users[i % users.length]]);
    const times: number[] = [];
    const started = process.hrtime.bigint();
    for (let i = 0; i < n; i++) {
      const t0 = process.hrtime.bigint();
      await client.query(sql, [users[i % users.length]]);
      times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    times.sort((a, b) => a - b);
    return { p50: percentile(times, 50), p99: percentile(times, 99), perSecond: n / seconds };
  } finally {
    await client.end();
  }
}

async function measureSize(adminUrl: string, records: number, options: Options, partitioned: boolean): Promise<Row | null> {
  const name = `${options.dbPrefix}_bench_usage_${records}_${partitioned ? 'p' : 'u'}`;
  const quoted = `"${name}"`;
  const url = withDatabase(adminUrl, name);
  const reuse = options.reuse && (await databaseExists(adminUrl, name));
  let seedSeconds = 0;
  const days = historyDays(records, options);
  let usageDailyRows = 0;
  let userDailyRowsInRange: number;
  let partitions = 0;
  if (!reuse) {
    await admin(adminUrl, `DROP DATABASE IF EXISTS ${quoted}`);
    await admin(adminUrl, `CREATE DATABASE ${quoted}`);
  }
  try {
    if (!reuse) {
      const migrator = createDatabase({ url, poolMax: 2, statementTimeoutMs: 600_000, lockTimeoutMs: 60_000, acquireTimeoutMs: 60_000 });
      const migrate = partitioned ? migrateToLatest(migrator.sequelize) : migrateUpTo(migrator.sequelize, BEFORE_PARTITIONING);
      await migrate.finally(() => migrator.close());
    }
    const client = new Client({ connectionString: url });
    await client.connect();
    try {
      if (!reuse) {
        // In chunks, each its own transaction (the rollups add up across chunks): one transaction writing
        // millions of rows would hold back the server-wide snapshot horizon for minutes, which anything
        // waiting for it (the event log) would notice.
        // The rollups are then built once from all the records (one GROUP BY each, as seedUsage does).
        for (let done = 0; done < records; done += SEED_CHUNK) {
          const seeded = await seedUsage(client, { users: USERS, records: Math.min(SEED_CHUNK, records - done), days, rollups: false });
          seedSeconds += seeded.ms / 1000;
        }
        seedSeconds += (await seedUsage(client, { users: USERS, records: 0, days, rollupsAfterId: '0' })).ms / 1000;
        await client.query('VACUUM ANALYZE');
      }
      usageDailyRows = Number((await client.query<{ n: string }>(`SELECT count(*)::text AS n FROM usage_daily`)).rows[0].n);
      // What is there (a reused database may hold fewer, if its seeding was stopped between chunks).
      if (reuse) records = Number((await client.query<{ n: string }>(`SELECT count(*)::text AS n FROM usage_records`)).rows[0].n);
      partitions = Number(
        (await client.query<{ n: string }>(`SELECT count(*)::text AS n FROM pg_inherits WHERE inhparent = to_regclass('usage_records')`)).rows[0].n,
      );
      const { rows } = await client.query<{ n: string }>(
        `SELECT count(*)::text AS n FROM usage_user_daily WHERE day > (now() AT TIME ZONE 'UTC')::date - 30`,
      );
      userDailyRowsInRange = Number(rows[0].n);
    } finally {
      await client.end();
    }
    if (options.seedOnly) return null;

    const served = await startBenchApp(url, JWT_SECRET);
    const port = served.port;
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const random = prng(20261124);
      const users = [1, ...Array.from({ length: SAMPLED_USERS - 1 }, () => 1 + Math.floor(random() * USERS))].map((i) =>
        token(`${SEED_USER_PREFIX}${i}`, 'user'),
      );
      const adminToken = token('bench-admin', 'admin');
      for (let round = 0; round < WARMUP_ROUNDS; round++) {
        for (const user of users) await get(agent, port, '/api/usage/stats', user);
        for (let i = 0; i < 10; i++) await get(agent, port, '/api/usage/system-stats', adminToken);
      }
      const insert = await measureInserts(url, options.inserts, users.map((_, i) => `${SEED_USER_PREFIX}${1 + ((i * 37) % USERS)}`));
      const userTimes: number[] = [];
      for (let i = 0; i < options.userRequests; i++) userTimes.push(await get(agent, port, '/api/usage/stats', users[i % users.length]));
      const systemTimes: number[] = [];
      for (let i = 0; i < options.systemRequests; i++) systemTimes.push(await get(agent, port, '/api/usage/system-stats', adminToken));
      userTimes.sort((a, b) => a - b);
      systemTimes.sort((a, b) => a - b);
      return {
        records,
        schema: partitioned ? 'partitioned' : 'unpartitioned',
        partitions,
        insert,
        seedSeconds,
        days,
        usageDailyRows,
        userDailyRowsInRange,
        user: { p50: percentile(userTimes, 50), p99: percentile(userTimes, 99) },
        system: { p50: percentile(systemTimes, 50), p99: percentile(systemTimes, 99) },
      };
    } finally {
      agent.destroy();
      await served.close();
    }
  } finally {
    if (!options.keep) await admin(adminUrl, `DROP DATABASE IF EXISTS ${quoted} WITH (FORCE)`).catch(() => undefined);
  }
}

const ms = (n: number) => n.toFixed(1);

/** Days of history a size is seeded over: DAYS, or --days-per-million of them per million records. */
function historyDays(records: number, options: Options): number {
  if (!options.daysPerMillion) return DAYS;
  return Math.max(DAYS, Math.round((options.daysPerMillion * records) / 1_000_000));
}

function table(rows: Row[], options: Options, where: string): string {
  const first = rows[0];
  const lines = [
    `| records | days of history | schema (usage_records partitions) | usage_daily rows | user-days in last 30 days | insert p50 | insert p99 | inserts/s | user stats p50 | user stats p99 | system stats p50 | system stats p99 | seed |`,
    `|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|`,
    ...rows.map(
      (r) =>
        `| ${r.records.toLocaleString('en-US')} | ${r.days} | ${r.schema} (${r.partitions}) | ${r.usageDailyRows.toLocaleString('en-US')} | ${r.userDailyRowsInRange.toLocaleString('en-US')} | ` +
        `${ms(r.insert.p50)} ms | ${ms(r.insert.p99)} ms | ${r.insert.perSecond.toFixed(0)} | ` +
        `${ms(r.user.p50)} ms | ${ms(r.user.p99)} ms | ${ms(r.system.p50)} ms | ${ms(r.system.p99)} ms | ${r.seedSeconds ? `${r.seedSeconds.toFixed(1)} s` : 'reused'} |`,
    ),
  ];
  const last = rows[rows.length - 1];
  if (rows.length > 1) {
    lines.push(
      '',
      `Largest / smallest p50: user stats ${(last.user.p50 / first.user.p50).toFixed(2)}x, system stats ${(last.system.p50 / first.system.p50).toFixed(2)}x.`,
    );
  }
  lines.push(
    '',
    `${options.inserts} sequential single-record inserts (acct_record_charged_usage), ` +
      `${options.userRequests} sequential user-stats requests (rotating over ${SAMPLED_USERS} users, the heaviest included) and ` +
      `${options.systemRequests} system-stats requests per size, after a warm-up; ${USERS.toLocaleString('en-US')} users, records over ` +
      `the days of history shown, up to now; ${where}; ${os.cpus().length} × ${os.cpus()[0]?.model.trim() ?? 'CPU'}, Node ${process.version}; ` +
      `${new Date().toISOString().slice(0, 10)}.`,
  );
  return lines.join('\n');
}

function writeIntoDocs(text: string): void {
  const file = path.resolve(__dirname, '../docs/usage.md');
  if (!fs.existsSync(file)) return;
  const doc = fs.readFileSync(file, 'utf8');
  const start = '<!-- usage-bench:start -->';
  const end = '<!-- usage-bench:end -->';
  const a = doc.indexOf(start);
  const b = doc.indexOf(end);
  if (a < 0 || b < a) return;
  fs.writeFileSync(file, `${doc.slice(0, a + start.length)}\n${text}\n${doc.slice(b)}`);
  console.log(`written to ${path.relative(process.cwd(), file)}`);
}

async function main() {
  const options = parseArgs(process.argv.slice(2));
  const server = await startServer();
  const rows: Row[] = [];
  try {
    const runs = [...options.unpartitionedSizes.map((size) => [size, false] as const), ...options.sizes.map((size) => [size, true] as const)];
    for (const [size, partitioned] of runs) {
      console.log(`${partitioned ? 'partitioned' : 'unpartitioned'}: seeding and measuring ${size.toLocaleString('en-US')} records...`);
      const row = await measureSize(server.adminUrl, size, options, partitioned);
      if (!row) continue;
      console.log(
        `  insert p50 ${ms(row.insert.p50)} ms p99 ${ms(row.insert.p99)} ms (${row.insert.perSecond.toFixed(0)}/s); ` +
          `user stats p50 ${ms(row.user.p50)} ms p99 ${ms(row.user.p99)} ms; system stats p50 ${ms(row.system.p50)} ms p99 ${ms(row.system.p99)} ms`,
      );
      rows.push(row);
    }
    if (options.seedOnly) return;
  } finally {
    await server.stop();
  }
  const text = table(rows, options, server.where);
  console.log(`\n${text}\n`);
  if (options.write) writeIntoDocs(text);
}

main().catch((error) => {
  console.error(error instanceof Error ? error.stack : error);
  process.exit(1);
});
