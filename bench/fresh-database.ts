import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import { createApp } from '../src/app';
import { loadConfig } from '../src/config';
import { createDatabase } from '../src/db/database';
import { startEmbeddedPostgres } from '../src/db/embedded-postgres';
import { migrateToLatest } from '../src/db/migrator';
import { createLogger } from '../src/lib/logger';

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

/** The service's app, served in this process on a free loopback port (the single-request benches). */
export interface BenchApp {
  port: number;
  /** Stops listening and closes the app's database pool. */
  close(): Promise<void>;
}

/**
 * createApp on `url` with production settings, no log output and nothing in the background (sweeper,
 * webhook dispatch, metrics, rate limits), listening on 127.0.0.1: what bench/reconcile.ts, bench/rerate.ts
 * and bench/usage-stats.ts time their requests against.
 */
export async function startBenchApp(url: string, jwtSecret: string): Promise<BenchApp> {
  const config = loadConfig({
    NODE_ENV: 'production',
    DATABASE_URL: url,
    JWT_SECRET: jwtSecret,
    LOG_LEVEL: 'silent',
    SWEEPER_INTERVAL_MS: '0',
    WEBHOOK_DISPATCH_INTERVAL_MS: '0',
    METRICS_ENABLED: 'false',
    RATE_LIMIT_ENABLED: 'false',
  });
  const db = createDatabase({
    url,
    poolMax: config.DATABASE_POOL_MAX,
    statementTimeoutMs: config.DB_STATEMENT_TIMEOUT_MS,
    lockTimeoutMs: config.DB_LOCK_TIMEOUT_MS,
    acquireTimeoutMs: config.DB_ACQUIRE_TIMEOUT_MS,
  });
  const { app } = createApp({ config, db, logger: createLogger('silent') });
  const server = http.createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    async close() {
      await new Promise((resolve) => server.close(resolve));
      await db.close();
    },
  };
}

/** What benchRequest answers: the status, the JSON body ({} when empty) and the time it took. */
export interface BenchResponse {
  status: number;
  json: Record<string, unknown>;
  ms: number;
}

/** One timed request to a bench app on 127.0.0.1, with a bearer token and, when given, a JSON body. */
export function benchRequest(port: number, method: string, urlPath: string, auth: string, body?: unknown, agent?: http.Agent): Promise<BenchResponse> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const started = process.hrtime.bigint();
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        path: urlPath,
        method,
        agent,
        headers: { Authorization: `Bearer ${auth}`, ...(payload ? { 'Content-Type': 'application/json', 'Content-Length': payload.length } : {}) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            json: JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as Record<string, unknown>,
            ms: Number(process.hrtime.bigint() - started) / 1e6,
          }),
        );
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}
