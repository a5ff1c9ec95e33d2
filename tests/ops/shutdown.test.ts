import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { findFreePort } from '../../src/db/embedded-postgres';
import { Client } from 'pg';
import { createTestContext, type TestContext } from '../support/context';
import { TEST_JWT_SECRET, tokenFor } from '../support/tokens';

/**
 * Runs the real server process (src/server.ts) on a test database and sends it SIGTERM while a request
 * is in flight. The request is held inside PostgreSQL, not by test-only code: the test's own transaction
 * inserts the caller's user row without committing, so the server's upsert of that user waits for it.
 */

const ROOT = path.resolve(__dirname, '../..');
let ctx: TestContext;
const children: ChildProcess[] = [];

beforeAll(async () => {
  ctx = await createTestContext();
});
afterAll(async () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await ctx.close();
});

interface Server {
  child: ChildProcess;
  port: number;
  logs: Record<string, unknown>[];
  waitForLog(msg: RegExp): Promise<Record<string, unknown>>;
  exited: Promise<number | null>;
}

async function startServer(env: Record<string, string | undefined>): Promise<Server> {
  const child = spawn(process.execPath, ['-r', 'ts-node/register/transpile-only', 'src/server.ts'], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH,
      NODE_ENV: 'production',
      METRICS_PUBLIC: 'true',
      PORT: '0',
      HOST: '127.0.0.1',
      DATABASE_URL: ctx.databaseUrl,
      DATABASE_PREPARED_STATEMENTS: String(ctx.config.DATABASE_PREPARED_STATEMENTS),
      JWT_SECRET: TEST_JWT_SECRET,
      LOG_LEVEL: 'info',
      RATE_LIMIT_ENABLED: 'false',
      DB_LOCK_TIMEOUT_MS: '120000',
      DB_STATEMENT_TIMEOUT_MS: '120000',
      SWEEPER_INTERVAL_MS: '200',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  const logs: Record<string, unknown>[] = [];
  const waiters: { msg: RegExp; resolve: (entry: Record<string, unknown>) => void }[] = [];
  let buffer = '';
  let stderr = '';
  child.stderr!.on('data', (chunk) => (stderr += chunk));
  child.stdout!.on('data', (chunk: Buffer) => {
    buffer += chunk.toString();
    let newline;
    while ((newline = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + 1);
      if (!line.startsWith('{')) continue;
      const entry = JSON.parse(line) as Record<string, unknown>;
      logs.push(entry);
      for (const waiter of [...waiters]) {
        if (waiter.msg.test(String(entry.msg))) {
          waiters.splice(waiters.indexOf(waiter), 1);
          waiter.resolve(entry);
        }
      }
    }
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const waitForLog = (msg: RegExp) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const seen = logs.find((entry) => msg.test(String(entry.msg)));
      if (seen) return resolve(seen);
      waiters.push({ msg, resolve });
      void exited.then((code) => reject(new Error(`server exited (${code}) before logging ${msg}: ${stderr}`)));
    });
  const listening = await waitForLog(/listening/);
  return { child, port: Number(listening.port), logs, waitForLog, exited };
}

interface Reply {
  status: number;
  body: Record<string, unknown>;
}

function get(port: number, urlPath: string, headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: urlPath, headers, agent: false }, (res) => {
      let text = '';
      res.on('data', (chunk) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text) }));
    });
    req.on('error', reject);
  });
}

/** Holds the user row of `userId` in an open transaction: the server's upsert of that user waits. */
async function holdUserRow(userId: string, databaseUrl = ctx.databaseUrl) {
  const client = new Client({ connectionString: databaseUrl });
  await client.connect();
  await client.query('BEGIN');
  await client.query('INSERT INTO user_accounts (id) VALUES ($1)', [userId]);
  return {
    release: async () => {
      await client.query('ROLLBACK');
      await client.end();
    },
  };
}

/** Resolves once a server statement is waiting on a lock in PostgreSQL (the request is in flight). */
async function waitUntilBlocked(databaseUrl = ctx.databaseUrl): Promise<void> {
  const client = new Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    for (;;) {
      const { rows } = await client.query(
        `SELECT 1 FROM pg_stat_activity
          WHERE datname = current_database() AND application_name = 'accounting-service'
            AND wait_event_type = 'Lock' AND query LIKE 'INSERT INTO user_accounts%'`,
      );
      if (rows.length > 0) return;
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    await client.end();
  }
}

async function waitUntilRefused(port: number): Promise<void> {
  for (;;) {
    try {
      await get(port, '/health');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ECONNREFUSED') return;
      throw error;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('graceful shutdown of the real server process', () => {
  test('When SIGTERM arrives during a request, then /ready turns 503, new connections are refused, the request completes and the process exits 0', async () => {
    const server = await startServer({ SHUTDOWN_DELAY_MS: '3000', SHUTDOWN_GRACE_MS: '60000' });
    const userId = `slow-${Date.now()}`;
    const hold = await holdUserRow(userId);
    const inFlight = get(server.port, '/api/me', { Authorization: `Bearer ${tokenFor({ sub: userId })}` });
    await waitUntilBlocked();

    server.child.kill('SIGTERM');
    await server.waitForLog(/shutting down/);
    const ready = await get(server.port, '/ready');
    await waitUntilRefused(server.port);
    const stillRunning = server.child.exitCode === null;
    await hold.release();
    const reply = await inFlight;
    const code = await server.exited;

    expect(ready.status).toBe(503);
    expect(ready.body).toMatchObject({ status: 'not_ready', checks: { draining: true } });
    expect(stillRunning).toBe(true);
    expect(reply.status).toBe(200);
    expect(reply.body.userId).toBe(userId);
    expect(code).toBe(0);
    const messages = server.logs.map((entry) => String(entry.msg));
    const order = ['shutting down', 'listener closed, requests finished, background jobs stopped', 'shutdown complete'].map((m) =>
      messages.findIndex((msg) => msg.startsWith(m)),
    );
    expect(order.every((i) => i >= 0)).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
    // The in-flight request was logged as completed before the listener reported closed.
    const requestLine = messages.findIndex((msg) => msg === 'GET /api/me 200');
    expect(requestLine).toBeGreaterThan(order[0]);
    expect(requestLine).toBeLessThan(order[1]);
  }, 180_000);

  test('When a request outlives SHUTDOWN_GRACE_MS, then the process still exits, with status 1', async () => {
    const server = await startServer({ SHUTDOWN_DELAY_MS: '0', SHUTDOWN_GRACE_MS: '1500' });
    const userId = `stuck-${Date.now()}`;
    const hold = await holdUserRow(userId);
    const inFlight = get(server.port, '/api/me', { Authorization: `Bearer ${tokenFor({ sub: userId })}` }).catch((error: Error) => error);
    await waitUntilBlocked();

    server.child.kill('SIGTERM');
    const code = await server.exited;
    await hold.release();

    expect(code).toBe(1);
    expect(server.logs.map((entry) => entry.msg)).toContain('shutdown grace period over: exiting with work still open');
    // The abandoned request's connection was cut, not answered.
    expect(await inFlight).toMatchObject({ code: 'ECONNRESET' });
  }, 180_000);

  test('When the embedded PostgreSQL is in use, then SIGTERM still lets the request finish before the database stops', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'acct-shutdown-pg-'));
    fs.chmodSync(dir, 0o755);
    const pgPort = await findFreePort();
    const databaseUrl = `postgres://postgres:postgres@127.0.0.1:${pgPort}/postgres`;
    try {
      const server = await startServer({
        DATABASE_URL: undefined,
        DATABASE_PREPARED_STATEMENTS: 'true',
        NODE_ENV: 'development',
        EMBEDDED_PG_DIR: path.join(dir, 'pg'),
        EMBEDDED_PG_PORT: String(pgPort),
        SHUTDOWN_GRACE_MS: '60000',
      });
      const userId = `embedded-${Date.now()}`;
      const hold = await holdUserRow(userId, databaseUrl);
      const inFlight = get(server.port, '/api/me', { Authorization: `Bearer ${tokenFor({ sub: userId })}` });
      await waitUntilBlocked(databaseUrl);

      server.child.kill('SIGTERM');
      await server.waitForLog(/shutting down/);
      await hold.release();
      const reply = await inFlight;
      const code = await server.exited;
      const probe = new Client({ connectionString: databaseUrl, connectionTimeoutMillis: 2000 });
      const pgStillUp = await probe.connect().then(
        () => probe.end().then(() => true),
        () => false,
      );

      expect(reply.status).toBe(200);
      expect(code).toBe(0);
      expect(pgStillUp).toBe(false);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 180_000);
});
