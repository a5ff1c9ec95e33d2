import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Client } from 'pg';
import request from 'supertest';
import { createApp, type App } from '../../src/app';
import { loadConfig } from '../../src/config';
import { databaseOptionsFrom } from '../../src/config/sequelize';
import { createDatabase, type Database } from '../../src/db/database';
import { migrateToLatest } from '../../src/db/migrator';
import { createRolesSql, DOCUMENTED_ROLES, grantAppSql, type RoleNames } from '../../src/db/roles';
import { createLogger } from '../../src/lib/logger';
import { TEST_JWT_SECRET, userWithRole } from '../support/tokens';

/**
 * Issue 12, item 9: the service runs as a least-privilege role. A fresh database is created for an owner
 * role (no superuser) that runs the migrations; the SQL of docs/operations.md grants an app role its rows;
 * the service then boots as the app role (its start-up migration check included) and serves the money paths,
 * the corrections and the sweepers, while the app role cannot rewrite or delete the ledger, truncate, or
 * change the schema.
 */
const suffix = crypto.randomBytes(4).toString('hex');
const names: RoleNames = {
  database: `acct_lp_${process.env.TEST_RUN_ID}_${suffix}`,
  owner: `acct_lp_owner_${suffix}`,
  app: `acct_lp_app_${suffix}`,
};
const OWNER_PASSWORD = 'change-me-owner';
const APP_PASSWORD = 'change-me-app';

function urlAs(user: string, password: string): string {
  const url = new URL(process.env.TEST_ADMIN_URL!);
  url.username = user;
  url.password = password;
  url.pathname = `/${names.database}`;
  return url.toString();
}

/** The documented SQL with this run's names in place of the documented ones. */
function localized(sql: string): string {
  return sql
    .replaceAll(DOCUMENTED_ROLES.owner, names.owner)
    .replaceAll(DOCUMENTED_ROLES.app, names.app)
    .replace(new RegExp(`\\b${DOCUMENTED_ROLES.database}\\b`, 'g'), names.database);
}

async function runAs(url: string, sql: string): Promise<void> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    // One statement at a time: CREATE DATABASE cannot run in the implicit transaction of a multi-statement query.
    for (const statement of sql.split(/;\n/).map((s) => s.trim().replace(/;$/, '')).filter(Boolean)) await client.query(statement);
  } finally {
    await client.end();
  }
}

let db: Database;
let app: App;
let appClient: Client;
let bootApplied: string[];

beforeAll(async () => {
  await runAs(process.env.TEST_ADMIN_URL!, localized(createRolesSql(DOCUMENTED_ROLES)));
  const owner = createDatabase({ url: urlAs(names.owner, OWNER_PASSWORD), poolMax: 2, statementTimeoutMs: 60_000, lockTimeoutMs: 60_000, acquireTimeoutMs: 60_000 });
  try {
    await migrateToLatest(owner.sequelize);
  } finally {
    await owner.close();
  }
  await runAs(urlAs(names.owner, OWNER_PASSWORD), localized(grantAppSql(DOCUMENTED_ROLES)));

  const appUrl = urlAs(names.app, APP_PASSWORD);
  const config = loadConfig({
    NODE_ENV: 'test',
    DATABASE_URL: appUrl,
    JWT_SECRET: TEST_JWT_SECRET,
    LOG_LEVEL: 'silent',
    SWEEPER_INTERVAL_MS: '0',
    USER_CACHE_TTL_MS: '0',
    PRICE_CACHE_TTL_MS: '0',
    RATE_LIMIT_ENABLED: 'false',
    DATABASE_PREPARED_STATEMENTS: process.env.DATABASE_PREPARED_STATEMENTS ?? 'true',
  });
  db = createDatabase(databaseOptionsFrom(config, appUrl));
  // What src/server.ts does at boot: with nothing pending, the migration step needs no DDL.
  bootApplied = await migrateToLatest(db.sequelize);
  app = createApp({ config, db, logger: createLogger('silent') });
  appClient = new Client({ connectionString: appUrl });
  await appClient.connect();
}, 120_000);

afterAll(async () => {
  await appClient?.end();
  await db?.close();
  const admin = new Client({ connectionString: process.env.TEST_ADMIN_URL });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${names.database} WITH (FORCE)`).catch(() => undefined);
  await admin.query(`DROP ROLE IF EXISTS ${names.app}`).catch(() => undefined);
  await admin.query(`DROP ROLE IF EXISTS ${names.owner}`).catch(() => undefined);
  await admin.end();
});

test('docs/operations.md shows exactly the SQL this test runs', () => {
  const doc = fs.readFileSync(path.join(__dirname, '../../docs/operations.md'), 'utf8');
  expect(doc).toContain(createRolesSql(DOCUMENTED_ROLES));
  expect(doc).toContain(grantAppSql(DOCUMENTED_ROLES));
});

test('When the service boots as the app role, then neither role is privileged and the boot migration step has nothing to do', async () => {
  expect(bootApplied).toEqual([]);
  const { rows } = await appClient.query(
    `SELECT rolname, rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls FROM pg_roles WHERE rolname = ANY($1) ORDER BY rolname`,
    [[names.owner, names.app]],
  );
  expect(rows).toHaveLength(2);
  for (const row of rows) expect(row).toMatchObject({ rolsuper: false, rolcreatedb: false, rolcreaterole: false, rolreplication: false, rolbypassrls: false });
  expect((await request(app.app).get('/ready')).status).toBe(200);
});

test('When the app role serves allocate, initialize, finalize, abort, records, corrections, reconcile and the sweepers, then all succeed', async () => {
  const supervisor = userWithRole('supervisor');
  const admin = userWithRole('admin');
  const user = userWithRole('user');
  const post = (auth: string, url: string, body: object, key?: string) => {
    const req = request(app.app).post(url).set('Authorization', auth);
    if (key) req.set('Idempotency-Key', key);
    return req.send(body);
  };

  const lot = await post(supervisor.auth, '/api/credits/allocate', { userId: user.id, credits: 100 }, 'grant-1');
  expect(lot.status).toBe(201);
  const expiring = await post(supervisor.auth, '/api/credits/allocate', { userId: user.id, credits: 5, expiresAt: new Date(Date.now() + 3_600_000).toISOString() });
  expect(expiring.status).toBe(201);

  expect((await post(user.auth, '/api/streaming-sessions/initialize', { sessionId: 's-1', modelId: 'gpt-4o', estimatedCredits: 2 })).status).toBe(201);
  const finalized = await post(user.auth, '/api/streaming-sessions/finalize', { sessionId: 's-1', actualInputTokens: 1000, actualOutputTokens: 500 });
  expect(finalized.status).toBe(200);
  expect((await post(user.auth, '/api/streaming-sessions/initialize', { sessionId: 's-2', modelId: 'gpt-4o', estimatedCredits: 2 })).status).toBe(201);
  expect((await post(user.auth, '/api/streaming-sessions/abort', { sessionId: 's-2' })).status).toBe(200);
  // The sweeper expires an overdue session (the owner arranges the clock).
  expect((await post(user.auth, '/api/streaming-sessions/initialize', { sessionId: 's-3', modelId: 'gpt-4o', estimatedCredits: 2 })).status).toBe(201);
  await runAs(urlAs(names.owner, OWNER_PASSWORD), `UPDATE streaming_sessions SET expires_at = now() - interval '1 second' WHERE id = 's-3'`);
  expect(await app.services.sessions.expireOverdue(10)).toBe(1);
  // A late finalize of the expired session refunds what it did not use.
  expect((await post(user.auth, '/api/streaming-sessions/finalize', { sessionId: 's-3', actualInputTokens: 10, actualOutputTokens: 10 })).status).toBe(200);

  const recorded = await post(user.auth, '/api/usage/record', { service: 'chat', operation: 'completion', credits: 3 }, 'rec-1');
  expect(recorded.status).toBe(201);
  expect((await post(supervisor.auth, `/api/usage/records/${recorded.body.usageRecord.id}/refund`, { reason: 'outage' })).status).toBe(200);
  expect((await post(supervisor.auth, '/api/credits/adjust', { userId: user.id, credits: -1, reason: 'clawback' })).status).toBe(200);
  expect((await post(supervisor.auth, `/api/credits/allocations/${lot.body.allocation.id}/revoke`, { reason: 'duplicate grant', credits: 10 })).status).toBe(200);

  await runAs(urlAs(names.owner, OWNER_PASSWORD), `UPDATE credit_allocations SET expires_at = now() - interval '1 second' WHERE id = ${Number(expiring.body.allocation.id)}`);
  expect(await app.services.credits.expireLots()).toBe(1);
  await runAs(urlAs(names.owner, OWNER_PASSWORD), `UPDATE idempotency_keys SET expires_at = now() - interval '1 second'`);
  expect(await app.services.idempotency.deleteExpired()).toBeGreaterThan(0);
  await app.services.corrections.materializeSchedules();
  await app.services.events.syncSettings();
  await app.services.events.prune();

  for (const url of [`/api/credits/balance/${user.id}`, '/api/credits/transactions', '/api/usage/stats', '/api/usage/records']) {
    expect((await request(app.app).get(url).set('Authorization', url.includes('balance') ? supervisor.auth : user.auth)).status).toBe(200);
  }
  expect((await request(app.app).get('/api/usage/system-stats').set('Authorization', admin.auth)).status).toBe(200);
  const reconcile = await request(app.app).get('/api/admin/reconcile').set('Authorization', admin.auth);
  expect(reconcile.status).toBe(200);
  expect(reconcile.body).toMatchObject({ ok: true, discrepancies: [] });
});

test.each([
  ['UPDATE of a ledger row', `UPDATE credit_transactions SET amount = amount`],
  ['DELETE of a ledger row', `DELETE FROM credit_transactions`],
  ['TRUNCATE of the ledger', `TRUNCATE credit_transactions`],
  ['TRUNCATE of usage records', `TRUNCATE usage_records`],
  ['DELETE of usage records', `DELETE FROM usage_records`],
  ['DELETE of sessions', `DELETE FROM streaming_sessions`],
  ['DELETE of lots', `DELETE FROM credit_allocations`],
  ['UPDATE of webhook attempts', `UPDATE webhook_attempts SET success = true`],
  ['a migration record written', `INSERT INTO "SequelizeMeta" (name) VALUES ('forged')`],
  ['CREATE TABLE', `CREATE TABLE app_made (id int)`],
  ['ALTER TABLE', `ALTER TABLE credit_transactions ADD COLUMN x int`],
  ['the ledger trigger disabled', `ALTER TABLE credit_transactions DISABLE TRIGGER ALL`],
  ['the ledger trigger dropped', `DROP TRIGGER credit_transactions_no_truncate ON credit_transactions`],
  ['a ledger function replaced', `CREATE OR REPLACE FUNCTION acct_ledger_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$`],
  ['triggers switched off for the session', `SET session_replication_role = replica`],
  ['a role created', `CREATE ROLE intruder`],
])('When the app role attempts %s, then PostgreSQL refuses it for lack of privilege', async (_name, sql) => {
  await expect(appClient.query(sql)).rejects.toMatchObject({ code: '42501' });
});
