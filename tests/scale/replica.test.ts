import { Client } from 'pg';
import request from 'supertest';
import { createApp, type App } from '../../src/app';
import { loadConfig } from '../../src/config';
import { databaseOptionsFrom } from '../../src/config/sequelize';
import { createDatabase, type Database } from '../../src/db/database';
import { migrateToLatest } from '../../src/db/migrator';
import { createLogger } from '../../src/lib/logger';
import { startPrimaryWithStandby, type PgServer } from '../support/pg-cluster';
import { TEST_JWT_SECRET, userWithRole } from '../support/tokens';

/**
 * DATABASE_REPLICA_URL against a real streaming standby (pg_basebackup -R from a throwaway primary):
 * statistics, lists and exports read from it while its lag is under REPLICA_MAX_LAG_MS; money paths and
 * balances never do; a lagging or stopped standby sends reads to the primary without errors.
 */
let cluster: Awaited<ReturnType<typeof startPrimaryWithStandby>>;
let db: Database;
let app: App;
const admin = userWithRole('admin');
const alice = userWithRole('user');

async function sql<T>(server: PgServer, text: string, params: unknown[] = []): Promise<T[]> {
  const client = new Client({ connectionString: server.url('acct') });
  await client.connect();
  try {
    return (await client.query(text, params)).rows as T[];
  } finally {
    await client.end();
  }
}

/** Polls `check` every 100 ms until it is true; fails after `ms` (a bound, not a timing claim). */
async function eventually(check: () => Promise<boolean>, what: string, ms = 20_000): Promise<void> {
  const until = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function reads(target: 'replica' | 'primary'): Promise<number> {
  return (await app.metrics.dbReads.get()).values.find((v) => v.labels.target === target)?.value ?? 0;
}

/** db_replica_lag_seconds as a scrape would read it (NaN: unknown). */
async function lagGauge(): Promise<number> {
  const metric = app.metrics.registry.getSingleMetric('db_replica_lag_seconds');
  return (await metric!.get()).values[0]?.value ?? -1;
}

const usageCount = async (server: PgServer) => Number((await sql<{ n: string }>(server, `SELECT count(*) AS n FROM usage_records`))[0].n);

async function recordUsage(credits: number) {
  await request(app.app)
    .post('/api/usage/record')
    .set('Authorization', alice.auth)
    .send({ service: 'chat', operation: 'completion', credits })
    .expect(201);
}

beforeAll(async () => {
  cluster = await startPrimaryWithStandby();
  const setup = new Client({ connectionString: cluster.primary.url('postgres') });
  await setup.connect();
  await setup.query('CREATE DATABASE acct');
  await setup.end();
  const config = loadConfig({
    NODE_ENV: 'test',
    DATABASE_URL: cluster.primary.url('acct'),
    DATABASE_REPLICA_URL: cluster.standby.url('acct'),
    REPLICA_MAX_LAG_MS: '500',
    JWT_SECRET: TEST_JWT_SECRET,
    LOG_LEVEL: 'silent',
    SWEEPER_INTERVAL_MS: '0',
    USER_CACHE_TTL_MS: '0',
    PRICE_CACHE_TTL_MS: '0',
    RATE_LIMIT_ENABLED: 'false',
  });
  db = createDatabase(databaseOptionsFrom(config, config.DATABASE_URL!));
  await migrateToLatest(db.sequelize);
  app = createApp({ config, db, logger: createLogger('silent') });
  await request(app.app)
    .post('/api/credits/allocate')
    .set('Authorization', admin.auth)
    .send({ userId: alice.id, credits: 100 })
    .expect(201);
}, 120_000);

afterAll(async () => {
  await db?.close();
  await cluster?.destroy();
});

test('When the standby is streaming and current, then statistics, lists and exports are read from it, and balances are not', async () => {
  await recordUsage(2);
  await eventually(async () => (await usageCount(cluster.standby)) === 1, 'the standby replayed the usage record');
  const before = { replica: await reads('replica'), primary: await reads('primary') };

  const stats = await request(app.app).get('/api/usage/stats').set('Authorization', alice.auth).expect(200);
  expect(stats.body.totals.requests).toBe(1);
  await request(app.app).get('/api/usage/records').set('Authorization', alice.auth).expect(200);
  await request(app.app).get('/api/usage/records?format=csv').set('Authorization', alice.auth).expect(200);
  await request(app.app).get('/api/credits/transactions').set('Authorization', alice.auth).expect(200);
  await request(app.app).get('/api/streaming-sessions/active').set('Authorization', alice.auth).expect(200);
  expect((await reads('replica')) - before.replica).toBeGreaterThanOrEqual(5);
  expect((await reads('primary')) - before.primary).toBe(0);

  const replicaBefore = await reads('replica');
  const balance = await request(app.app).get('/api/credits/balance').set('Authorization', alice.auth).expect(200);
  expect(balance.body.availableCredits).toBe(98);
  expect(await reads('replica')).toBe(replicaBefore);
  expect(await lagGauge()).toBeGreaterThanOrEqual(0);
  expect(await lagGauge()).toBeLessThan(0.5);
}, 60_000);

test('When replay is paused and the standby falls behind, then reads go to the primary and see the latest write; resumed, they return to the standby', async () => {
  await sql(cluster.standby, 'SELECT pg_wal_replay_pause()');
  await recordUsage(3);
  const primaryBefore = await reads('primary');
  let latest = 0;
  await eventually(async () => {
    const res = await request(app.app).get('/api/usage/stats').set('Authorization', alice.auth).expect(200);
    latest = res.body.totals.requests;
    return (await reads('primary')) > primaryBefore;
  }, 'a lagging standby made reads fall back to the primary');
  const fromPrimary = await request(app.app).get('/api/usage/stats').set('Authorization', alice.auth).expect(200);
  expect(fromPrimary.body.totals.requests).toBe(2);
  expect(db.replica!.lastLagMs).toBeGreaterThanOrEqual(500);
  expect(await lagGauge()).toBeGreaterThanOrEqual(0.5);
  expect(latest).toBeGreaterThanOrEqual(1);

  await sql(cluster.standby, 'SELECT pg_wal_replay_resume()');
  await eventually(async () => (await usageCount(cluster.standby)) === 2, 'the standby caught up');
  const replicaBefore = await reads('replica');
  await eventually(async () => {
    await request(app.app).get('/api/usage/stats').set('Authorization', alice.auth).expect(200);
    return (await reads('replica')) > replicaBefore;
  }, 'reads returned to the standby');
}, 90_000);

test('When the standby stops, then every read is answered by the primary without an error', async () => {
  await cluster.standby.stop();
  const primaryBefore = await reads('primary');
  for (let i = 0; i < 5; i++) {
    const res = await request(app.app).get('/api/usage/stats').set('Authorization', alice.auth);
    expect(res.status).toBe(200);
    expect(res.body.totals.requests).toBe(2);
  }
  expect((await reads('primary')) - primaryBefore).toBeGreaterThanOrEqual(5);
  expect(await lagGauge()).toBeNaN();
}, 60_000);
