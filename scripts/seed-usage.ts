/**
 * npm run seed:usage -- --users 1000 --records 1000000 [--days 90] [--reset]
 *
 * Fills a database with usage quickly, entirely in SQL: users, one lot each, `records` usage records
 * spread over the last `days` days (generate_series, one INSERT ... SELECT), then every rollup built
 * from exactly those records with one INSERT ... SELECT ... GROUP BY each, the same figures the
 * per-record path (acct_record_usage + the usage_daily trigger) would have produced. Runs on
 * DATABASE_URL, or on the embedded PostgreSQL that `npm start` uses. Migrations are applied first.
 * --reset empties the usage tables first (a scratch database only; refused when NODE_ENV=production).
 */
import 'dotenv/config';
import { Client } from 'pg';
import { loadConfig } from '../src/config';
import { createDatabase } from '../src/db/database';
import { databaseSslOptions } from '../src/db/ssl';
import { startEmbeddedPostgres } from '../src/db/embedded-postgres';
import { migrateToLatest } from '../src/db/migrator';

export interface SeedOptions {
  users: number;
  records: number;
  /** Records are spread uniformly over the last `days` days, up to now. */
  days: number;
  reset?: boolean;
  /** Seeded users are `${userPrefix}1` .. `${userPrefix}${users}`. */
  userPrefix?: string;
  /**
   * false: write the records only, no rollups (a big seed in many short transactions, then one call with
   * `records: 0, rollupsAfterId: '0'` folds them all). Default true.
   */
  rollups?: boolean;
  /** Fold the records with an id above this one into the rollups (default: the ones this call writes). */
  rollupsAfterId?: string;
}

export const SEED_USER_PREFIX = 'seed-user-';

export interface SeedResult {
  insertedRecords: number;
  usageDailyRows: number;
  ms: number;
}

/**
 * Seeds through one connection in one transaction. Users are drawn with a skew (user k gets about
 * 1/sqrt(k) of the traffic), so "top users" means something; 3% of records are left unpaid.
 */
export async function seedUsage(client: Client, options: SeedOptions): Promise<SeedResult> {
  const started = Date.now();
  const prefix = options.userPrefix ?? SEED_USER_PREFIX;
  await client.query('BEGIN');
  try {
    await client.query(`SET LOCAL statement_timeout = 0`);
    // The derived rollups are built below in bulk; the per-row trigger would do the same work 1M times.
    await client.query(`SET LOCAL acct.bulk_rollup = 'on'`);
    if (options.reset) {
      await client.query(`TRUNCATE usage_records, usage_daily, usage_daily_system, usage_user_daily, usage_user_weekly, usage_totals`);
    }
    await client.query(
      `INSERT INTO user_accounts (id) SELECT $1 || i FROM generate_series(1, $2::int) AS i ON CONFLICT (id) DO NOTHING`,
      [prefix, options.users],
    );
    // One lot of 1,000,000 credits for each seeded user that has none.
    await client.query(
      `SELECT acct_grant(u.id, 1000000000000, NULL, 'seed', 'seed-usage')
         FROM user_accounts u
        WHERE u.id LIKE $1 || '%' AND NOT EXISTS (SELECT 1 FROM credit_allocations a WHERE a.user_id = u.id)`,
      [prefix],
    );
    // Partitioned usage_records (issue 18): the months the records fall in exist before they are written
    // (what the service's background job keeps ready; without them they would all land in the default).
    const [{ partitioned }] = (
      await client.query<{ partitioned: boolean }>(`SELECT to_regproc('acct_partitions_ensure') IS NOT NULL AS partitioned`)
    ).rows;
    if (partitioned) await client.query(`SELECT acct_partitions_ensure(3, now() - make_interval(days => $1::int))`, [options.days]);
    const [{ max_id: maxBefore }] = (await client.query<{ max_id: string }>(`SELECT coalesce(max(id), 0)::text AS max_id FROM usage_records`)).rows;

    const inserted = await client.query(
      `WITH price AS (
         SELECT array_agg(model_id ORDER BY model_id) AS models, array_agg(input_price_per_1m ORDER BY model_id) AS pin,
                array_agg(output_price_per_1m ORDER BY model_id) AS pout, array_agg(cached_input_price_per_1m ORDER BY model_id) AS pcached,
                array_agg(price_version ORDER BY model_id) AS versions, count(*)::int AS n
           FROM (SELECT DISTINCT ON (model_id) * FROM model_prices ORDER BY model_id, price_version DESC) AS current_prices
       ), combo AS (
         SELECT ARRAY['chat', 'chat', 'streaming', 'embeddings', 'agents', 'search', 'images', 'tts'] AS service,
                ARRAY['completion', 'stream', 'session', 'embed', 'run', 'query', 'generate', 'speak'] AS operation,
                5 AS with_model
       ), draw AS (
         SELECT 1 + floor($2::int * power(random(), 2))::int AS u,
                now() - random() * make_interval(days => $3::int) AS at,
                1 + floor(random() * 8)::int AS c,
                random() AS m,
                floor(random() * 4000)::bigint AS input,
                floor(random() * 1500)::bigint AS output,
                random() AS cached_share,
                random() AS cost,
                random() < 0.03 AS unpaid
           FROM generate_series(1, $4::int)
       ), shaped AS (
         SELECT $1 || d.u AS user_id, d.at, combo.service[d.c] AS service, combo.operation[d.c] AS operation,
                CASE WHEN d.c <= combo.with_model THEN 1 + floor(d.m * price.n)::int END AS mi,
                CASE WHEN d.c <= combo.with_model THEN d.input ELSE 0 END AS input,
                CASE WHEN d.c <= combo.with_model THEN d.output ELSE 0 END AS output,
                CASE WHEN d.c <= combo.with_model THEN floor(d.input * d.cached_share * 0.3)::bigint ELSE 0 END AS cached,
                d.cost, d.unpaid
           FROM draw d, combo, price
       ), costed AS (
         SELECT s.*, p.models[s.mi] AS model_id, p.versions[s.mi] AS price_version,
                CASE WHEN s.mi IS NULL THEN 1000 + floor(s.cost * 100000)::bigint
                     ELSE ((s.input - s.cached) * p.pin[s.mi] + s.cached * p.pcached[s.mi] + s.output * p.pout[s.mi]
                           + 999999) / 1000000 END AS credits
           FROM shaped s, price p
       )
       INSERT INTO usage_records (user_id, service, operation, model_id, price_version, input_tokens, output_tokens,
                                  cached_input_tokens, credits, charged_credits, unpaid_credits, recorded_by, created_at)
       SELECT user_id, service, operation, model_id, price_version, input, output, cached,
              credits, CASE WHEN unpaid THEN 0 ELSE credits END, CASE WHEN unpaid THEN credits ELSE 0 END, 'seed', at
         FROM costed
        ORDER BY at`,
      [prefix, options.users, options.days, options.records],
    );

    if (options.rollups === false) {
      await client.query('COMMIT');
      return { insertedRecords: inserted.rowCount ?? 0, usageDailyRows: 0, ms: Date.now() - started };
    }
    const foldAfter = options.rollupsAfterId ?? maxBefore;
    const daily = await client.query(
      `INSERT INTO usage_daily AS d (user_id, day, service, operation, model_id, requests, credits, unpaid_credits,
                                     input_tokens, output_tokens, cached_input_tokens)
       SELECT user_id, (created_at AT TIME ZONE 'UTC')::date, service, operation, coalesce(model_id, ''), count(*),
              sum(credits), sum(unpaid_credits), sum(input_tokens), sum(output_tokens), sum(cached_input_tokens)
         FROM usage_records WHERE id > $1::bigint
        GROUP BY 1, 2, 3, 4, 5
       ON CONFLICT (user_id, day, service, operation, model_id) DO UPDATE
          SET requests = d.requests + EXCLUDED.requests, credits = d.credits + EXCLUDED.credits,
              unpaid_credits = d.unpaid_credits + EXCLUDED.unpaid_credits, input_tokens = d.input_tokens + EXCLUDED.input_tokens,
              output_tokens = d.output_tokens + EXCLUDED.output_tokens,
              cached_input_tokens = d.cached_input_tokens + EXCLUDED.cached_input_tokens`,
      [foldAfter],
    );
    await client.query(
      `INSERT INTO usage_daily_system AS t (day, model_id, shard, requests, credits, unpaid_credits, input_tokens,
                                            output_tokens, cached_input_tokens)
       SELECT (created_at AT TIME ZONE 'UTC')::date, coalesce(model_id, ''), acct_usage_shard(user_id), count(*),
              sum(credits), sum(unpaid_credits), sum(input_tokens), sum(output_tokens), sum(cached_input_tokens)
         FROM usage_records WHERE id > $1::bigint
        GROUP BY 1, 2, 3
       ON CONFLICT (day, model_id, shard) DO UPDATE
          SET requests = t.requests + EXCLUDED.requests, credits = t.credits + EXCLUDED.credits,
              unpaid_credits = t.unpaid_credits + EXCLUDED.unpaid_credits, input_tokens = t.input_tokens + EXCLUDED.input_tokens,
              output_tokens = t.output_tokens + EXCLUDED.output_tokens,
              cached_input_tokens = t.cached_input_tokens + EXCLUDED.cached_input_tokens`,
      [foldAfter],
    );
    await client.query(
      `INSERT INTO usage_user_daily AS t (day, user_id, requests, credits, unpaid_credits)
       SELECT (created_at AT TIME ZONE 'UTC')::date, user_id, count(*), sum(credits), sum(unpaid_credits)
         FROM usage_records WHERE id > $1::bigint
        GROUP BY 1, 2
       ON CONFLICT (day, user_id) DO UPDATE
          SET requests = t.requests + EXCLUDED.requests, credits = t.credits + EXCLUDED.credits,
              unpaid_credits = t.unpaid_credits + EXCLUDED.unpaid_credits`,
      [foldAfter],
    );
    await client.query(
      `INSERT INTO usage_user_weekly AS t (week, user_id, requests, credits, unpaid_credits)
       SELECT date_trunc('week', created_at AT TIME ZONE 'UTC')::date, user_id, count(*), sum(credits), sum(unpaid_credits)
         FROM usage_records WHERE id > $1::bigint
        GROUP BY 1, 2
       ON CONFLICT (week, user_id) DO UPDATE
          SET requests = t.requests + EXCLUDED.requests, credits = t.credits + EXCLUDED.credits,
              unpaid_credits = t.unpaid_credits + EXCLUDED.unpaid_credits`,
      [foldAfter],
    );
    await client.query(
      `INSERT INTO usage_totals AS t (shard, requests, credits, unpaid_credits)
       SELECT acct_usage_shard(user_id), count(*), sum(credits), sum(unpaid_credits)
         FROM usage_records WHERE id > $1::bigint
        GROUP BY 1
       ON CONFLICT (shard) DO UPDATE
          SET requests = t.requests + EXCLUDED.requests, credits = t.credits + EXCLUDED.credits,
              unpaid_credits = t.unpaid_credits + EXCLUDED.unpaid_credits`,
      [foldAfter],
    );
    await client.query('COMMIT');
    // Fresh statistics and visibility maps, as autovacuum would give a table that grew over months.
    await client.query(`VACUUM ANALYZE usage_records, usage_daily, usage_daily_system, usage_user_daily, usage_user_weekly, usage_totals, user_accounts, credit_allocations`);
    return { insertedRecords: inserted.rowCount ?? 0, usageDailyRows: daily.rowCount ?? 0, ms: Date.now() - started };
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}

function parseArgs(argv: string[]): SeedOptions {
  const options: SeedOptions = { users: 1000, records: 100_000, days: 90, reset: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      const n = Number(argv[++i]);
      if (!Number.isSafeInteger(n) || n < 1) throw new Error(`${arg} needs a positive integer`);
      return n;
    };
    if (arg === '--users') options.users = value();
    else if (arg === '--records') options.records = value();
    else if (arg === '--days') options.days = value();
    else if (arg === '--reset') options.reset = true;
    else throw new Error(`unknown argument ${arg} (expected --users N --records N [--days N] [--reset])`);
  }
  return options;
}

async function main() {
  const options = parseArgs(process.argv.slice(2));
  const config = loadConfig();
  if (options.reset && config.NODE_ENV === 'production') throw new Error('--reset is refused when NODE_ENV=production');
  const embedded = config.DATABASE_URL
    ? undefined
    : await startEmbeddedPostgres({ dataDir: config.EMBEDDED_PG_DIR, port: config.EMBEDDED_PG_PORT, persistent: true });
  const url = config.DATABASE_URL ?? embedded!.url;
  try {
    const db = createDatabase({ url, poolMax: 2, statementTimeoutMs: 600_000, lockTimeoutMs: 60_000, acquireTimeoutMs: 60_000, ssl: databaseSslOptions(config.DATABASE_SSL, config.DATABASE_SSL_CA) });
    await migrateToLatest(db.sequelize).finally(() => db.close());
    const client = new Client({ connectionString: url, ssl: databaseSslOptions(config.DATABASE_SSL, config.DATABASE_SSL_CA) || undefined });
    await client.connect();
    try {
      const result = await seedUsage(client, options);
      console.log(
        `seeded ${result.insertedRecords} usage records for ${options.users} users over ${options.days} days ` +
          `(${result.usageDailyRows} usage_daily rows) in ${(result.ms / 1000).toFixed(1)} s`,
      );
    } finally {
      await client.end();
    }
  } finally {
    await embedded?.stop();
  }
}

if (require.main === module) {
  main().catch((error) => {
    console.error(error instanceof Error ? error.message : error);
    process.exit(1);
  });
}
