import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import { envSchema } from '../../src/config';
import { findFreePort } from '../../src/db/embedded-postgres';

const ROOT = path.resolve(__dirname, '../..');
const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');

/** The text of a `## title` section of the README. */
function section(title: string): string {
  const start = readme.indexOf(`## ${title}\n`);
  if (start < 0) throw new Error(`README has no "## ${title}" section`);
  const end = readme.indexOf('\n## ', start + 3);
  return readme.slice(start, end < 0 ? undefined : end);
}

describe('README configuration table', () => {
  test('When the config schema has a variable, then the README table and .env.example both document it', () => {
    const variables = Object.keys(envSchema.shape);
    const table = section('Configuration');
    const example = fs.readFileSync(path.join(ROOT, '.env.example'), 'utf8');

    const undocumented = variables.filter((name) => !table.includes(`| \`${name}\` |`));
    const notInExample = variables.filter((name) => !new RegExp(`^#? ?${name}=`, 'm').test(example));

    expect(variables.length).toBeGreaterThan(20);
    expect({ undocumented, notInExample }).toEqual({ undocumented: [], notInExample: [] });
  });
});

/**
 * The README as a newcomer meets it, in real processes: the "Run it" command (`npm start`, embedded
 * PostgreSQL) in one terminal, the quick tour's block exactly as written in a second one, twice. Only the
 * environment differs: a temporary EMBEDDED_PG_DIR and free ports, so it never meets a developer's own
 * service. Then the mistakes of the first hour: a second `npm start`, `npm run migrate` while it runs, a
 * busy port, a malformed PORT.
 */
describe('README quick tour, run as written against npm start', () => {
  const tourBlocks = [...section('Quick tour').matchAll(/```bash\n([\s\S]*?)```/g)].map((m) => m[1].trim());
  const startCommand = tourBlocks[0];
  const tourScript = tourBlocks.find((b) => b.includes('curl'))!;
  let dir: string;
  let env: Record<string, string>;
  let port: number;
  let pgPort: number;
  let service: ChildProcess;
  let serviceOutput = '';
  let serviceExited: Promise<number | null>;

  /** Runs a shell command line in ROOT the way a terminal would; resolves with its exit code and output. */
  function terminal(command: string, extraEnv: Record<string, string> = {}, timeout = 120_000): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise((resolve) =>
      execFile('bash', ['-c', command], { cwd: ROOT, env: { ...env, ...extraEnv }, timeout }, (error, stdout, stderr) =>
        resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr }),
      ),
    );
  }

  /** The process id a message names ("in use by process N"), and what that process runs. */
  const namedPid = (message: string) => Number(/in use by process (\d+)/.exec(message)?.[1]);
  const commandLineOf = (pid: number) => fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');

  async function query<T>(sql: string): Promise<T[]> {
    const client = new Client({ connectionString: `postgres://postgres:postgres@127.0.0.1:${pgPort}/postgres` });
    await client.connect();
    try {
      return (await client.query(sql)).rows as T[];
    } finally {
      await client.end();
    }
  }

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'acct-readme-'));
    fs.chmodSync(dir, 0o755); // PostgreSQL runs as its own user and must reach the data folder
    port = await findFreePort();
    pgPort = await findFreePort();
    env = {
      PATH: process.env.PATH!,
      HOME: process.env.HOME ?? dir,
      EMBEDDED_PG_DIR: path.join(dir, 'pg'),
      EMBEDDED_PG_PORT: String(pgPort),
      PORT: String(port),
      HOST: '127.0.0.1',
      // Set but empty: a developer's own .env (read by dotenv, which never overrides) cannot point this
      // run at another database or secret.
      DATABASE_URL: '',
      JWT_SECRET: '',
    };
    expect(startCommand).toBe('npm start');
    // Its own process group, so the npm wrapper, the service and PostgreSQL all get the signal at the end.
    service = spawn('bash', ['-c', startCommand], { cwd: ROOT, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    serviceExited = new Promise((resolve) => service.once('exit', (code) => resolve(code)));
    await new Promise<void>((resolve, reject) => {
      const onData = (chunk: Buffer) => {
        serviceOutput += chunk.toString();
        if (serviceOutput.includes(`Accounting service: http://localhost:${port}`)) resolve();
      };
      service.stdout!.on('data', onData);
      service.stderr!.on('data', onData);
      void serviceExited.then((code) => reject(new Error(`npm start exited (${code}):\n${serviceOutput}`)));
    });
  }, 180_000);

  afterAll(async () => {
    if (service?.exitCode === null) {
      process.kill(-service.pid!, 'SIGTERM');
      await serviceExited;
    }
    fs.rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  /** The tour's block, unchanged; `curl` is wrapped to reach this run's port and to report each status. */
  async function runTour(): Promise<{ statuses: number[]; stdout: string }> {
    const prelude = [
      'set -e',
      // The wrapper's -w comes last, so it replaces the README's `-w '\n'` (and keeps its newline).
      `curl() { command curl --max-time 30 "\${@//localhost:3000/127.0.0.1:${port}}" -w '\\n@@status=%{http_code}\\n'; }`,
      '',
    ].join('\n');
    const result = await terminal(prelude + tourScript);
    if (result.code !== 0) throw new Error(`tour failed (${result.code}):\n${result.stderr}`);
    return { statuses: [...result.stdout.matchAll(/@@status=(\d+)/g)].map((m) => Number(m[1])), stdout: result.stdout };
  }

  /** What the second terminal shows for the tour's "balance after the call" step. */
  function balanceAfterTheCall(stdout: string): string {
    const responses = stdout.split('\n').filter((line) => line.startsWith('{'));
    const step = tourScript.split(/\n(?=# \d)/).findIndex((part) => /balance after the call/.test(part));
    const curlsBefore = tourScript.split(/\n(?=# \d)/).slice(0, step).join('\n').match(/^curl /gm)!.length;
    return responses[curlsBefore];
  }

  test('When the tour is run as written, twice, then every call succeeds, the balance reads as the README says, and credits move once', async () => {
    const expected = /You should see (.+)$/m.exec(tourScript)![1].trim();

    const first = await runTour();
    const available = `SELECT sum(remaining_credits)::text AS micro FROM credit_allocations WHERE user_id = 'alice'`;
    const afterFirst = await query(available);
    const second = await runTour();

    const failed = (statuses: number[]) => statuses.filter((status) => status < 200 || status >= 300);
    // The last curl is piped into head, so its status line is cut off.
    expect(first.statuses.length).toBeGreaterThanOrEqual(8);
    expect({ statuses: first.statuses, failed: failed(first.statuses) }).toEqual({ statuses: first.statuses, failed: [] });
    expect({ statuses: second.statuses, failed: failed(second.statuses) }).toEqual({ statuses: second.statuses, failed: [] });
    expect(second.statuses).toHaveLength(first.statuses.length);
    // As the README says: the repeated initialize answers with the session as it is now.
    expect(readme).toContain('repeating initialize returns that session as it is now (`"status":"completed"` once');
    expect(second.stdout).toContain('{"sessionId":"tour-session-1","modelId":"gpt-4o","status":"completed"');
    // The second terminal's view of the balance, both times.
    expect(balanceAfterTheCall(first.stdout)).toContain(expected);
    expect(balanceAfterTheCall(second.stdout)).toContain(expected);
    // And the database agrees: one allocation, one completed session, nothing moved by the second run.
    expect(afterFirst).toEqual([{ micro: '98950000' }]);
    expect(await query(available)).toEqual(afterFirst);
    expect(await query(`SELECT status FROM streaming_sessions WHERE id = 'tour-session-1'`)).toEqual([{ status: 'completed' }]);
    expect(await query(`SELECT count(*)::int AS n FROM credit_allocations WHERE user_id = 'alice'`)).toEqual([{ n: 1 }]);
  }, 240_000);

  test('When npm run example runs against the started service, then it prints the flow without errors or empty days', async () => {
    const result = await terminal('npm run -s example');

    expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: '' });
    expect(result.stdout).toMatch(/^4\. session .+ stopped mid-stream and aborted$/m);
    expect(result.stdout).toContain('"status": "aborted"');
    expect(result.stdout).not.toMatch(/"error"|disconnected/);
    // One day had usage; the other 29 of the default 30 days are summarised, not printed.
    expect(result.stdout).toMatch(/\(1 of \d+ days with usage\)/);
    expect(result.stdout).not.toContain('"requests": 0');
    expect(result.stdout.split('\n').length).toBeLessThan(150);
  }, 120_000);

  test('When the data folder is custom, then the generated secret is where the README and the start banner say', () => {
    // README: "`jwt-secret` in the folder that holds the data folder".
    expect(readme).toContain('`jwt-secret` in the folder that holds the data');
    const secret = path.join(dir, 'jwt-secret');
    expect(fs.readFileSync(secret, 'utf8').trim().length).toBeGreaterThanOrEqual(32);
    expect(serviceOutput).toContain(`JWT secret:         ${secret}`);
    expect(fs.readdirSync(path.join(dir, 'pg'))).not.toContain('jwt-secret');
  });

  test('When npm start is run a second time, then it names the running process and the data folder and exits 1', async () => {
    const result = await terminal(startCommand);

    expect(result.code).toBe(1);
    const line = result.stderr.trim().split('\n').pop()!;
    expect(line).toMatch(/^failed to start: the embedded PostgreSQL data folder /);
    expect(line).toContain(path.join(dir, 'pg'));
    expect(line).toContain('EMBEDDED_PG_DIR');
    expect(commandLineOf(namedPid(line))).toMatch(/src\/server\.ts/);
    // The running service is untouched.
    expect(service.exitCode).toBeNull();
    expect((await fetch(`http://127.0.0.1:${port}/health`)).status).toBe(200);
  }, 120_000);

  test('When npm run migrate is run while the service runs, then it says the same and exits 1', async () => {
    const result = await terminal('npm run -s migrate');

    expect(result.code).toBe(1);
    expect(result.stderr.trim()).toMatch(new RegExp(`^migrate: the embedded PostgreSQL data folder ${path.join(dir, 'pg')} is in use by process \\d+ `));
    expect(commandLineOf(namedPid(result.stderr))).toMatch(/src\/server\.ts/);
    expect((await fetch(`http://127.0.0.1:${port}/health`)).status).toBe(200);
  }, 120_000);

  test('When the port is taken, then one line names the port and PORT, before any migration runs', async () => {
    const admin = new Client({ connectionString: process.env.TEST_ADMIN_URL });
    const database = `acct_readme_${process.env.TEST_RUN_ID}_empty`;
    await admin.connect();
    await admin.query(`CREATE DATABASE ${database}`);
    try {
      const url = new URL(process.env.TEST_ADMIN_URL!);
      url.pathname = `/${database}`;
      const result = await terminal(startCommand, { DATABASE_URL: url.toString(), JWT_SECRET: 'x'.repeat(40) });

      expect(result.code).toBe(1);
      expect(result.stderr.trim().split('\n')).toEqual([
        `failed to start: port ${port} on 127.0.0.1 is already in use (the service already running?): stop that process, or set PORT to a free port, e.g. PORT=${port + 1}`,
      ]);
      const tables = new Client({ connectionString: url.toString() });
      await tables.connect();
      const { rows } = await tables.query(`SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = 'public'`);
      await tables.end();
      expect(rows).toEqual([{ n: 0 }]);
    } finally {
      await admin.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
      await admin.end();
    }
  }, 120_000);

  test('When PORT is not a number, then one line says what PORT must be and what it got', async () => {
    const result = await terminal(startCommand, { PORT: 'abc' });

    expect(result.code).toBe(1);
    expect(result.stderr.trim().split('\n')).toEqual([
      'Invalid configuration: PORT must be an integer port number (1-65535, or 0 for any free port), got "abc"',
    ]);
  }, 120_000);
});
