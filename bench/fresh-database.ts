import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import { createDatabase } from '../src/db/database';
import { startEmbeddedPostgres } from '../src/db/embedded-postgres';
import { migrateToLatest } from '../src/db/migrator';

export interface FreshDatabase {
  url: string;
  /** 'embedded' (a throwaway server in a temp dir) or the host of DATABASE_URL. */
  where: string;
  stop(): Promise<void>;
}

function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

/**
 * A new, empty database for one benchmark run: on the server named by DATABASE_URL when set (a new
 * database is created there and dropped afterwards), otherwise on an embedded PostgreSQL in a temp dir.
 */
export async function startFreshDatabase(): Promise<FreshDatabase> {
  const serverUrl = process.env.DATABASE_URL?.trim();
  if (serverUrl) {
    const name = `acct_bench_${Date.now().toString(36)}_${process.pid}`;
    const admin = new Client({ connectionString: serverUrl });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${name}`);
    await admin.end();
    return {
      url: withDatabase(serverUrl, name),
      where: new URL(serverUrl).host,
      async stop() {
        const c = new Client({ connectionString: serverUrl });
        await c.connect();
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => undefined);
        await c.end();
      },
    };
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'acct-bench-pg-'));
  // The embedded server runs as a `postgres` system user when we are root: it must reach the directory.
  fs.chmodSync(dir, 0o755);
  // embedded-postgres stops its server on SIGINT/SIGTERM and then exits the process itself, possibly
  // before our own cleanup ran: remove the directory on the way out in any case.
  const removeDir = () => fs.rmSync(dir, { recursive: true, force: true });
  process.once('exit', removeDir);
  try {
    const embedded = await startEmbeddedPostgres({ dataDir: path.join(dir, 'data'), persistent: false });
    return {
      url: embedded.url,
      where: 'embedded',
      async stop() {
        await embedded.stop().catch(() => undefined);
        removeDir();
      },
    };
  } catch (error) {
    removeDir();
    throw error;
  }
}

/** Applies every migration with the service's own migrator. */
export async function migrate(url: string): Promise<void> {
  const db = createDatabase({ url, poolMax: 2, statementTimeoutMs: 120_000, lockTimeoutMs: 60_000, acquireTimeoutMs: 60_000 });
  try {
    await migrateToLatest(db.sequelize);
  } finally {
    await db.close();
  }
}
