import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import { Client } from 'pg';
import { createDatabase } from '../../src/db/database';
import { startEmbeddedPostgres, type EmbeddedDatabase } from '../../src/db/embedded-postgres';
import { migrateToLatest } from '../../src/db/migrator';
import { grantAppSql } from '../../src/db/roles';

declare global {
  var __EMBEDDED_PG__: EmbeddedDatabase | undefined;
  var __EMBEDDED_PG_DIR__: string | undefined;
}

/** Replaces the database name in a connection URL. */
export function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

/**
 * Starts PostgreSQL for the run (embedded unless TEST_DATABASE_URL or DATABASE_URL is set) and migrates
 * one template database; every test file then clones its own database from it (tests/support/context.ts).
 */
export default async function globalSetup(): Promise<void> {
  let adminUrl = process.env.TEST_DATABASE_URL || process.env.DATABASE_URL;
  if (!adminUrl) {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'acct-test-pg-'));
    fs.chmodSync(dataDir, 0o755);
    globalThis.__EMBEDDED_PG_DIR__ = dataDir;
    globalThis.__EMBEDDED_PG__ = await startEmbeddedPostgres({ dataDir: path.join(dataDir, 'data'), persistent: false });
    adminUrl = globalThis.__EMBEDDED_PG__.url;
  }
  const runId = `${Date.now().toString(36)}${process.pid.toString(36)}`;
  const template = `acct_tmpl_${runId}`;

  const admin = new Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${template}`);
  await admin.end();

  const db = createDatabase({ url: withDatabase(adminUrl, template), poolMax: 2, statementTimeoutMs: 60_000, lockTimeoutMs: 60_000, acquireTimeoutMs: 60_000 });
  await migrateToLatest(db.sequelize);
  await db.close();

  // Rate-limit tests share one limit through Redis when one answers locally (tests/ops/rate-limit.test.ts).
  if (!process.env.TEST_REDIS_URL && (await answers('127.0.0.1', 6379))) process.env.TEST_REDIS_URL = 'redis://127.0.0.1:6379';

  process.env.TEST_ADMIN_URL = adminUrl;
  // TEST_POOLER_URL (e.g. PgBouncer in transaction mode): the apps under test connect through it, while
  // databases are created, cloned and dropped directly (a pooler would keep the template busy).
  if (process.env.TEST_POOLER_URL) process.env.TEST_APP_URL = process.env.TEST_POOLER_URL;
  // TEST_AS_APP_ROLE=1: the apps under test (and the tests' own connections) connect as a least-privilege
  // role granted exactly what docs/operations.md grants the service (src/db/roles.ts). Tests that arrange
  // with DDL or deletes fail there by design.
  if (process.env.TEST_AS_APP_ROLE === '1') {
    if (process.env.TEST_POOLER_URL) throw new Error('TEST_AS_APP_ROLE and TEST_POOLER_URL cannot be combined');
    process.env.TEST_APP_URL = await createAppRole(adminUrl, template, runId);
  }
  process.env.TEST_TEMPLATE_DB = template;
  process.env.TEST_RUN_ID = runId;
}

/** Creates this run's app role, grants it on the template (clones inherit the grants) and returns its URL. */
async function createAppRole(adminUrl: string, template: string, runId: string): Promise<string> {
  const role = `acct_app_${runId}`;
  const password = `pw_${runId}`;
  const admin = new Client({ connectionString: withDatabase(adminUrl, template) });
  await admin.connect();
  try {
    const [{ current_user: owner }] = (await admin.query<{ current_user: string }>(`SELECT current_user`)).rows;
    await admin.query(`CREATE ROLE ${role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '${password}'`);
    const sql = grantAppSql({ database: template, owner: `"${owner}"`, app: role });
    for (const statement of sql.split('\n')) await admin.query(statement);
  } finally {
    await admin.end();
  }
  process.env.TEST_APP_ROLE = role;
  const url = new URL(adminUrl);
  url.username = role;
  url.password = password;
  return url.toString();
}

/** True when something accepts TCP connections at host:port within half a second. */
function answers(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port, timeout: 500 });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.once('connect', () => done(true));
    socket.once('timeout', () => done(false));
    socket.once('error', () => done(false));
  });
}
