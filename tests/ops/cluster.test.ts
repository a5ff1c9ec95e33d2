import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { findFreePort } from '../../src/db/embedded-postgres';
import { createTestContext, type TestContext } from '../support/context';
import { count, grantDirect } from '../support/db';
import { addTestModel, TEST_MODEL } from '../sessions/support';
import { call } from '../reliability/harness/http';
import { TEST_JWT_SECRET, tokenFor } from '../support/tokens';

/**
 * WEB_CONCURRENCY=2: the real server process forks two workers on one port; /metrics, whichever worker
 * answers it, counts both workers' requests, also after one of them is replaced; SIGTERM drains both.
 */
const ROOT = path.resolve(__dirname, '../..');
let ctx: TestContext;
let child: ChildProcess | undefined;

beforeAll(async () => {
  ctx = await createTestContext();
});
afterAll(async () => {
  if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await ctx.close();
});

function get(port: number, urlPath: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    // agent: false: a new connection per request, so the primary's round robin spreads them over the workers.
    const req = http.get({ host: '127.0.0.1', port, path: urlPath, headers, agent: false }, (res) => {
      let body = '';
      res.on('data', (chunk) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
  });
}

/** The value of one sample line of a Prometheus text exposition (`name{labels} value`), or undefined. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

test('When WEB_CONCURRENCY=2, then two workers serve one port, /metrics counts both, and SIGTERM to the primary stops both and exits 0', async () => {
  const port = await findFreePort();
  child = spawn(process.execPath, ['-r', 'ts-node/register/transpile-only', 'src/server.ts'], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH,
      NODE_ENV: 'production',
      PORT: String(port),
      HOST: '127.0.0.1',
      DATABASE_URL: ctx.databaseUrl,
      DATABASE_PREPARED_STATEMENTS: String(ctx.config.DATABASE_PREPARED_STATEMENTS),
      JWT_SECRET: TEST_JWT_SECRET,
      LOG_LEVEL: 'info',
      METRICS_TOKEN: 'metrics-token-for-the-cluster-test',
      WEB_CONCURRENCY: '2',
      DATABASE_POOL_MAX: '4',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | null>((resolve) => child!.once('exit', (code) => resolve(code)));
  let listening = 0;
  let output = '';
  const waiters: Array<{ count: number; resolve: () => void }> = [];
  /** Resolves once `count` workers in all have logged that they listen (a replacement counts too). */
  const listeningCount = (count: number) =>
    new Promise<void>((resolve, reject) => {
      waiters.push({ count, resolve });
      void exited.then((code) => reject(new Error(`server exited (${code}) early:\n${output}`)));
    });
  let partial = ''; // a log line can arrive split over two chunks (a busy machine): parse whole lines only
  child.stdout!.on('data', (chunk: Buffer) => {
    output += chunk.toString();
    const lines = (partial + chunk.toString()).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      try {
        const entry = JSON.parse(line) as { msg?: string };
        if (entry.msg?.includes('listening')) listening++;
      } catch {
        // not a log line
      }
    }
    for (const waiter of waiters) if (listening >= waiter.count) waiter.resolve();
  });
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  await listeningCount(2);

  const auth = { Authorization: `Bearer ${tokenFor({ sub: 'cluster-user' })}` };
  const answers = await Promise.all(Array.from({ length: 20 }, () => get(port, '/api/me', auth)));
  expect(answers.map((a) => a.status)).toEqual(Array(20).fill(200));
  // One active session (a database fact both workers read): reported once, not once per worker.
  await grantDirect(ctx.db, 'cluster-user', 10);
  await addTestModel(ctx.db);
  const opened = await call(`http://127.0.0.1:${port}`, {
    method: 'POST',
    path: '/api/streaming-sessions/initialize',
    headers: auth,
    body: { modelId: TEST_MODEL, estimatedCredits: 2 },
    agent: new http.Agent({ keepAlive: false }),
  });
  expect(opened.status).toBe(201);
  expect(await count(ctx.db, 'streaming_sessions', `status = 'active'`)).toBe(1);

  // Each scrape is a new connection, so the scrapes land on both workers; every one reports the cluster.
  const metricsAuth = { Authorization: 'Bearer metrics-token-for-the-cluster-test' };
  const meSeries = 'http_request_duration_seconds_count{method="GET",route="/api/me",status="200"}';
  for (let i = 0; i < 4; i++) {
    const scrape = await get(port, '/metrics', metricsAuth);
    expect(scrape.status).toBe(200);
    expect(sample(scrape.body, meSeries)).toBe(20);
    expect(sample(scrape.body, 'accounting_sessions_active')).toBe(1);
    expect(sample(scrape.body, 'db_pool_connections_max')).toBe(2 * 4); // each worker's pool: summed
    expect(sample(scrape.body, 'db_replica_lag_seconds')).toBeNaN(); // no replica: NaN, not 0, across the IPC channel
  }

  // A worker dies: its requests stay counted, while it is replaced and after (a drop would read as a reset).
  const workers = fs.readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').trim().split(' ').map(Number);
  expect(workers).toHaveLength(2);
  process.kill(workers[0], 'SIGKILL');
  // Until the primary has seen the exit, it may still hand a new connection to the dead worker.
  for (let waited = 0; !output.includes('worker exited: starting another') && waited < 30_000; waited += 20) await new Promise((resolve) => setTimeout(resolve, 20));
  for (let i = 0; i < 3; i++) {
    const scrape = await get(port, '/metrics', metricsAuth);
    expect(scrape.status).toBe(200);
    expect(sample(scrape.body, meSeries)).toBe(20);
  }
  await listeningCount(3);
  await get(port, '/api/me', auth);
  for (let i = 0; i < 4; i++) {
    const scrape = await get(port, '/metrics', metricsAuth);
    expect(scrape.status).toBe(200);
    expect(sample(scrape.body, meSeries)).toBe(21);
    expect(sample(scrape.body, 'db_pool_connections_max')).toBe(2 * 4); // the replacement's pool, not the dead one's
  }

  child.kill('SIGTERM');
  expect(await exited).toBe(0);
  const drained = output.split('\n').filter((line) => line.includes('shutdown complete'));
  expect(drained).toHaveLength(2);
  // Two workers compile the TypeScript sources at start: slow on a busy 2-core machine.
}, 240_000);
