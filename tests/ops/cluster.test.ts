import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import { findFreePort } from '../../src/db/embedded-postgres';
import { createTestContext, type TestContext } from '../support/context';
import { TEST_JWT_SECRET, tokenFor } from '../support/tokens';

/** WEB_CONCURRENCY=2: the real server process forks two workers on one port; SIGTERM drains both. */
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
    // agent: false: a new connection per request, so the kernel spreads them over the workers.
    const req = http.get({ host: '127.0.0.1', port, path: urlPath, headers, agent: false }, (res) => {
      let body = '';
      res.on('data', (chunk) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
  });
}

test('When WEB_CONCURRENCY=2, then two workers serve one port, and SIGTERM to the primary stops both and exits 0', async () => {
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
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | null>((resolve) => child!.once('exit', (code) => resolve(code)));
  let listening = 0;
  let output = '';
  const twoListening = new Promise<void>((resolve, reject) => {
    child!.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      for (const line of chunk.toString().split('\n')) {
        try {
          const entry = JSON.parse(line) as { msg?: string };
          if (entry.msg?.includes('listening')) listening++;
        } catch {
          // not a log line
        }
      }
      if (listening === 2) resolve();
    });
    child!.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    void exited.then((code) => reject(new Error(`server exited (${code}) early:\n${output}`)));
  });
  await twoListening;

  const auth = { Authorization: `Bearer ${tokenFor({ sub: 'cluster-user' })}` };
  const answers = await Promise.all(Array.from({ length: 20 }, () => get(port, '/api/me', auth)));
  expect(answers.map((a) => a.status)).toEqual(Array(20).fill(200));

  child.kill('SIGTERM');
  expect(await exited).toBe(0);
  const drained = output.split('\n').filter((line) => line.includes('shutdown complete'));
  expect(drained).toHaveLength(2);
  // Two workers compile the TypeScript sources at start: slow on a busy 2-core machine.
}, 240_000);
