/**
 * npm run bench:reconcile [-- --rows 10000000 --users N --changed 100 --seed-only | --url URL]
 *
 * GET /api/admin/reconcile at scale (issue 18): how long a full run, an incremental run after `--changed`
 * users were charged, an incremental run with nothing changed, and a per-user run (?userId=) take.
 *
 * A new database (on DATABASE_URL's server, or a throwaway embedded PostgreSQL), all migrations, then a bulk
 * SQL seed of `--rows` ledger rows (default 10,000,000): `--users` users (default rows / 100) with two lots
 * each (a grant row per lot), and one usage record per remaining row, each paid by a `charge` ledger row from
 * its user's first lot; lots' remaining credits set from their rows — a ledger that reconciles (the full run
 * checks it). The seed loads with session_replication_role = replica (no foreign-key or append-only triggers
 * per row; it needs a superuser), then VACUUM ANALYZE. The app (createApp) listens on 127.0.0.1; every run
 * is an HTTP GET as an admin.
 *
 * On a shared machine, seed and measure separately (the seed is heavy, the timings need the machine alone):
 *   --seed-only   seed, print the database URL, keep the database (nothing timed)
 *   --url URL     measure on a database seeded by --seed-only (dropped afterwards unless --keep)
 */
import os from 'node:os';
import jwt from 'jsonwebtoken';
import { Client } from 'pg';
import { benchRequest, migrate, startBenchApp, startFreshDatabase } from './fresh-database';

const JWT_SECRET = 'reconcile-bench-secret-only-for-this-local-benchmark';
const USER_PREFIX = 'rec-user-';

interface Options {
  rows: number;
  users: number | null;
  changed: number;
  seedOnly: boolean;
  url: string | null;
  keep: boolean;
}

function parseArgs(argv: string[]): Options {
  const options: Options = { rows: 10_000_000, users: null, changed: 100, seedOnly: false, url: null, keep: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const positive = (text: string) => {
      const n = Number(text);
      if (!Number.isSafeInteger(n) || n < 1) throw new Error(`${arg}: ${text} is not a positive integer`);
      return n;
    };
    if (arg === '--rows') options.rows = positive(argv[++i]);
    else if (arg === '--users') options.users = positive(argv[++i]);
    else if (arg === '--changed') options.changed = positive(argv[++i]);
    else if (arg === '--seed-only') options.seedOnly = true;
    else if (arg === '--url') options.url = argv[++i];
    else if (arg === '--keep') options.keep = true;
    else throw new Error(`unknown argument ${arg}`);
  }
  return options;
}

const usersOf = (options: Options) => options.users ?? Math.max(1, Math.floor(options.rows / 100));

/** Users, two lots each with their grant rows, one record + charge row per remaining row; set-based, one transaction. */
async function seed(url: string, options: Options): Promise<number> {
  const users = usersOf(options);
  const charges = options.rows - 2 * users;
  if (charges < 0) throw new Error(`--rows ${options.rows} is less than two grant rows per user (${users} users)`);
  const started = Date.now();
  const client = new Client({ connectionString: url });
  await client.connect();
  const step = async (name: string, sql: string, bind: unknown[] = []) => {
    const t = Date.now();
    await client.query(sql, bind);
    console.log(`  ${name}: ${((Date.now() - t) / 1000).toFixed(1)} s`);
  };
  try {
    await client.query('BEGIN');
    await client.query(`SET LOCAL statement_timeout = 0`);
    // Bulk load: no per-row foreign-key checks or append-only trigger (superuser only). The full reconcile
    // run measured afterwards checks that the seed is consistent.
    await client.query(`SET LOCAL session_replication_role = replica`);
    await step('users', `INSERT INTO user_accounts (id) SELECT $1 || u FROM generate_series(1, $2::int) u`, [USER_PREFIX, users]);
    // Lot 2u-1 (no expiry, pays the charges) and 2u (expires in a year) of user u: 1,000,000 credits each.
    await step('lots', 
      `INSERT INTO credit_allocations (id, user_id, total_credits, remaining_credits, expires_at, allocated_by, note)
       OVERRIDING SYSTEM VALUE
       SELECT l, $1 || ((l + 1) / 2), 1000000000000, 1000000000000, CASE WHEN l % 2 = 0 THEN now() + interval '365 days' END, 'bench', NULL
         FROM generate_series(1, 2 * $2::int) l`,
      [USER_PREFIX, users],
    );
    await step('grant rows', 
      `INSERT INTO credit_transactions (user_id, type, amount, allocation_id, actor_id, note)
       SELECT user_id, 'grant', total_credits, id, 'bench', NULL FROM credit_allocations ORDER BY id`,
    );
    // Record g belongs to user 1 + g % users and costs 1..1000 micro-credits, all of it charged.
    await step('usage records', 
      `INSERT INTO usage_records (id, user_id, service, operation, input_tokens, output_tokens, credits, charged_credits, unpaid_credits, recorded_by)
       OVERRIDING SYSTEM VALUE
       SELECT g, $1 || (1 + g % $2::int), 'bench', 'completion', 100, 10, 1 + g % 1000, 1 + g % 1000, 0, 'bench'
         FROM generate_series(1, $3::bigint) g`,
      [USER_PREFIX, users, charges],
    );
    await step('charge rows', 
      `INSERT INTO credit_transactions (user_id, type, amount, allocation_id, usage_record_id, actor_id)
       SELECT $1 || (1 + g % $2::int), 'charge', 1 + g % 1000, 2 * (1 + g % $2::int) - 1, g, 'bench'
         FROM generate_series(1, $3::bigint) g`,
      [USER_PREFIX, users, charges],
    );
    await step('lot remaining', 
      `UPDATE credit_allocations a SET remaining_credits = a.total_credits - s.spent
         FROM (SELECT allocation_id, sum(amount) AS spent FROM credit_transactions WHERE type = 'charge' GROUP BY 1) s
        WHERE a.id = s.allocation_id`,
    );
    for (const table of ['credit_allocations', 'usage_records']) {
      await client.query(`SELECT setval(pg_get_serial_sequence($1, 'id'), (SELECT max(id) FROM ${table}))`, [table]);
    }
    await client.query('COMMIT');
    await client.query(`SET statement_timeout = 0`);
    await step('vacuum analyze', 'VACUUM ANALYZE credit_transactions, usage_records, credit_allocations, user_accounts');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    await client.end();
  }
  return Date.now() - started;
}

const token = (sub: string, role: string) => jwt.sign({ sub, role }, JWT_SECRET, { algorithm: 'HS256', expiresIn: '2h' });

interface Run {
  name: string;
  ms: number[];
  checkedUsers: number;
}

async function measure(url: string, options: Options): Promise<{ runs: Run[]; counts: Record<string, string>; sizes: string }> {
  const served = await startBenchApp(url, JWT_SECRET);
  const port = served.port;
  const admin = token('reconcile-bench-admin', 'admin');
  const users = usersOf(options);
  const runs: Run[] = [];
  const reconcile = async (name: string, query: string, times: number, expectUsers?: number) => {
    const run: Run = { name, ms: [], checkedUsers: 0 };
    for (let i = 0; i < times; i++) {
      const res = await benchRequest(port, 'GET', `/api/admin/reconcile${query}`, admin);
      if (res.status !== 200 || res.json.ok !== true) throw new Error(`${name}: ${res.status} ${JSON.stringify(res.json).slice(0, 500)}`);
      if (expectUsers !== undefined && res.json.checkedUsers !== expectUsers) {
        throw new Error(`${name}: checked ${String(res.json.checkedUsers)} users, expected ${expectUsers}`);
      }
      run.checkedUsers = res.json.checkedUsers as number;
      run.ms.push(res.ms);
      console.log(`${name}: ${(res.ms / 1000).toFixed(2)} s, ${run.checkedUsers} users (${String(res.json.mode)})`);
    }
    runs.push(run);
  };
  try {
    await reconcile('full', '?mode=full', 1);
    // `--changed` users (spread over the id range), one usage record each through the API.
    const touched = Array.from({ length: Math.min(options.changed, users) }, (_, i) => `${USER_PREFIX}${1 + Math.floor((i * users) / Math.min(options.changed, users))}`);
    for (const user of touched) {
      const res = await benchRequest(port, 'POST', '/api/usage/record', admin, { userId: user, service: 'bench', operation: 'touch', credits: 1 });
      if (res.status !== 201 && res.status !== 200) throw new Error(`usage record for ${user}: ${res.status} ${JSON.stringify(res.json)}`);
    }
    // A run's checkpoint is the oldest transaction of the database still running at its snapshot: let any
    // (an autoanalyze) end, so that the touched users are all and only what changed.
    await settle(url);
    await reconcile(`incremental, ${touched.length} users changed`, '?mode=incremental', 1);
    await reconcile('incremental, nothing changed', '?mode=incremental', 2);
    await reconcile('per user (?userId=)', `?userId=${encodeURIComponent(touched[0])}`, 3, 1);

    const client = new Client({ connectionString: url });
    await client.connect();
    try {
      const [counts] = (
        await client.query<Record<string, string>>(
          `SELECT (SELECT count(*) FROM credit_transactions)::text AS ledger_rows, (SELECT count(*) FROM usage_records)::text AS usage_records,
                  (SELECT count(*) FROM credit_allocations)::text AS lots, (SELECT count(*) FROM user_accounts)::text AS users`,
        )
      ).rows;
      const [sizes] = (
        await client.query<{ sizes: string }>(
          `SELECT 'credit_transactions ' || pg_size_pretty(pg_total_relation_size('credit_transactions')) ||
                  ', usage_records ' || pg_size_pretty(pg_total_relation_size('usage_records')) AS sizes`,
        )
      ).rows;
      return { runs, counts, sizes: sizes.sizes };
    } finally {
      await client.end();
    }
  } finally {
    await served.close();
  }
}

/** Waits (at most 60 s) until no other transaction of the bench's database is running (an autoanalyze, say). */
async function settle(url: string): Promise<void> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    const until = Date.now() + 60_000;
    while (Date.now() < until) {
      const { rows } = await client.query<{ n: string }>(
        `SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND backend_xid IS NOT NULL AND pid <> pg_backend_pid()`,
      );
      if (rows[0].n === '0') return;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  } finally {
    await client.end();
  }
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor((values.length - 1) / 2)];
const seconds = (ms: number) => (ms >= 10_000 ? `${(ms / 1000).toFixed(1)} s` : ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${Math.round(ms)} ms`);

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  if (options.url) {
    const result = await measure(options.url, options);
    print(result, options, new URL(options.url).host);
    if (!options.keep) await dropDatabase(options.url);
    return;
  }
  const fresh = await startFreshDatabase();
  let keep = false;
  try {
    await migrate(fresh.url);
    console.log(`seeding ${options.rows.toLocaleString('en-US')} ledger rows for ${usersOf(options).toLocaleString('en-US')} users...`);
    const seedMs = await seed(fresh.url, options);
    console.log(`seeded in ${(seedMs / 1000).toFixed(1)} s`);
    if (options.seedOnly) {
      if (fresh.where === 'embedded') throw new Error('--seed-only needs DATABASE_URL (an embedded server stops with this process)');
      keep = true;
      console.log(`database kept: ${fresh.url}`);
      return;
    }
    print(await measure(fresh.url, options), options, fresh.where);
  } finally {
    if (!keep) await fresh.stop();
  }
}

async function dropDatabase(url: string): Promise<void> {
  const parsed = new URL(url);
  const name = parsed.pathname.slice(1);
  parsed.pathname = '/postgres';
  const client = new Client({ connectionString: parsed.toString() });
  await client.connect();
  try {
    await client.query(`DROP DATABASE IF EXISTS "${name.replaceAll('"', '')}" WITH (FORCE)`);
  } finally {
    await client.end();
  }
}

function print(result: Awaited<ReturnType<typeof measure>>, options: Options, where: string): void {
  const lines = [
    `| run | users checked | time (median of n) |`,
    `|---|---:|---:|`,
    ...result.runs.map((r) => `| ${r.name} | ${r.checkedUsers.toLocaleString('en-US')} | ${seconds(median(r.ms))} (${r.ms.length}) |`),
    '',
    `\`npm run bench:reconcile -- --rows ${options.rows}${options.users ? ` --users ${options.users}` : ''} --changed ${options.changed}\`: ` +
      `${Number(result.counts.ledger_rows).toLocaleString('en-US')} ledger rows, ${Number(result.counts.usage_records).toLocaleString('en-US')} usage records, ` +
      `${Number(result.counts.lots).toLocaleString('en-US')} lots, ${Number(result.counts.users).toLocaleString('en-US')} users (${result.sizes}); every run clean; ` +
      `HTTP GET on 127.0.0.1; ${where}; ${os.cpus().length} × ${os.cpus()[0]?.model.trim() ?? 'CPU'} (load average ${os.loadavg()[0].toFixed(1)} at the end), ` +
      `Node ${process.version}; ${new Date().toISOString().slice(0, 10)}.`,
  ];
  console.log(lines.join('\n'));
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
