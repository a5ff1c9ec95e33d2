import crypto from 'node:crypto';
import { Client } from 'pg';
import { createApp, type App } from '../../src/app';
import { loadConfig, type Config } from '../../src/config';
import { databaseOptionsFrom } from '../../src/config/sequelize';
import { createDatabase, type Database } from '../../src/db/database';
import { createLogger } from '../../src/lib/logger';
import { TEST_JWT_SECRET } from './tokens';

export interface TestContext extends App {
  config: Config;
  db: Database;
  databaseUrl: string;
  /** The same database as its owner, directly (never through the pooler): for DDL and the writes the app role may not do. */
  ownerUrl: string;
  close(): Promise<void>;
}

/** Where the app under test connects: through the pooler when the run has one (TEST_POOLER_URL), else directly. */
function urlFor(database: string, base = process.env.TEST_APP_URL ?? process.env.TEST_ADMIN_URL!): string {
  const url = new URL(base);
  url.pathname = `/${database}`;
  return url.toString();
}

async function cloneTemplate(database: string): Promise<void> {
  const admin = new Client({ connectionString: process.env.TEST_ADMIN_URL });
  await admin.connect();
  try {
    // Two workers cloning at the same instant can collide on the template; a short retry settles it.
    for (let attempt = 1; ; attempt++) {
      try {
        await admin.query(`CREATE DATABASE ${database} TEMPLATE ${process.env.TEST_TEMPLATE_DB}`);
        return;
      } catch (error) {
        if (attempt >= 20) throw error;
        await new Promise((r) => setTimeout(r, 100 * attempt));
      }
    }
  } finally {
    await admin.end();
  }
}

/**
 * A fresh, migrated database (cloned from the run's template) with an app built on it.
 * `env` overrides configuration, e.g. { SESSION_TTL_SECONDS: '10' }.
 */
export async function createTestContext(env: Record<string, string> = {}): Promise<TestContext> {
  const database = `acct_t_${process.env.TEST_RUN_ID}_${crypto.randomBytes(4).toString('hex')}`;
  await cloneTemplate(database);
  const databaseUrl = urlFor(database);
  const config = loadConfig({
    NODE_ENV: 'test',
    DATABASE_URL: databaseUrl,
    JWT_SECRET: TEST_JWT_SECRET,
    LOG_LEVEL: 'silent',
    SWEEPER_INTERVAL_MS: '0',
    USER_CACHE_TTL_MS: '0',
    PRICE_CACHE_TTL_MS: '0',
    // Off by default: many tests send hundreds of requests as one user. tests/ops enables it explicitly.
    RATE_LIMIT_ENABLED: 'false',
    // CI runs the suite a second time through PgBouncer in transaction mode (.ci/run) with this set to false.
    DATABASE_PREPARED_STATEMENTS: process.env.DATABASE_PREPARED_STATEMENTS ?? 'true',
    ...env,
  });
  const db = createDatabase(databaseOptionsFrom(config, databaseUrl));
  const app = createApp({ config, db, logger: createLogger(config.LOG_LEVEL) });
  return {
    ...app,
    config,
    db,
    databaseUrl,
    ownerUrl: urlFor(database, process.env.TEST_ADMIN_URL!),
    async close() {
      await db.close();
      const admin = new Client({ connectionString: process.env.TEST_ADMIN_URL });
      await admin.connect();
      await admin.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`).catch(() => undefined);
      await admin.end();
    },
  };
}
