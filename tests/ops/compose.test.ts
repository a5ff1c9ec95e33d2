import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse as parseDotenv } from 'dotenv';
import YAML from 'yaml';
import { envSchema, loadConfig } from '../../src/config';

/**
 * The container instructions of docs/operations.md and docker-compose.yml. No Docker engine runs in the
 * test environment, so the compose file is checked as data and the shell lines the docs give are run
 * with `docker` stubbed out; `--check-config`, which compose runs, is run for real.
 */
const ROOT = path.resolve(__dirname, '../..');
const operations = fs.readFileSync(path.join(ROOT, 'docs/operations.md'), 'utf8');
const compose = YAML.parse(fs.readFileSync(path.join(ROOT, 'docker-compose.yml'), 'utf8'), { merge: true });

function run(file: string, args: string[], options: { cwd: string; env: Record<string, string> }): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) =>
    execFile(file, args, { ...options, timeout: 60_000 }, (error, stdout, stderr) =>
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr }),
    ),
  );
}

describe('docker compose instructions', () => {
  test('When the documented commands are run twice, then .env holds one generated secret, kept, that the service accepts', async () => {
    const docker = operations.slice(operations.indexOf('## Docker'));
    const block = /```bash\n([\s\S]*?)```/.exec(docker)![1];
    expect(block).toContain('docker compose up');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'acct-compose-'));
    try {
      const env = { PATH: process.env.PATH!, HOME: dir };
      // `docker` is a stub here: the test is about what happens to the secret.
      const script = `set -e\ndocker() { echo "docker $*"; }\n${block}`;

      const first = await run('bash', ['-c', script], { cwd: dir, env });
      const secretAfterFirst = fs.readFileSync(path.join(dir, '.env'), 'utf8');
      const second = await run('bash', ['-c', script], { cwd: dir, env });
      const secretAfterSecond = fs.readFileSync(path.join(dir, '.env'), 'utf8');

      expect([first.code, second.code]).toEqual([0, 0]);
      expect(first.stdout).toContain('docker compose up --build');
      expect(secretAfterSecond).toBe(secretAfterFirst);
      expect(secretAfterFirst.match(/^JWT_SECRET=/gm)).toHaveLength(1);
      const { JWT_SECRET, METRICS_TOKEN } = parseDotenv(secretAfterFirst);
      expect(JWT_SECRET.length).toBeGreaterThanOrEqual(32);
      expect(() => loadConfig({ NODE_ENV: 'production', DATABASE_URL: 'postgres://u@db/x', JWT_SECRET, METRICS_TOKEN })).not.toThrow();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('When compose starts the stack, then config-check runs first on the same environment and the service waits for it to pass', () => {
    const { accounting, 'config-check': check } = compose.services;

    expect(check.command).toEqual(['node', 'dist/src/server.js', '--check-config']);
    expect(check.restart).toBe('no');
    expect(check.environment).toEqual(accounting.environment);
    expect(accounting.depends_on['config-check']).toEqual({ condition: 'service_completed_successfully' });
    expect(accounting.environment.JWT_SECRET).toMatch(/^\$\{JWT_SECRET:\?.*\.env/);
    const missing = Object.keys(envSchema.shape).filter((name) => !(name in accounting.environment) && !name.startsWith('EMBEDDED_PG_'));
    expect(missing).toEqual([]);
  });

  test.each([
    ['short', 1, 'Invalid configuration: JWT_SECRET must be at least 32 characters'],
    ['s'.repeat(32), 0, 'configuration is valid'],
  ])('When --check-config runs with JWT_SECRET=%p, then it exits %p with one line', async (secret, code, line) => {
    // The database in DATABASE_URL does not exist: the check must not try to reach it.
    const env = {
      PATH: process.env.PATH!,
      NODE_ENV: 'production',
      DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none',
      JWT_SECRET: secret,
      METRICS_TOKEN: 'm'.repeat(32),
      PORT: '1',
    };
    const result = await run(process.execPath, ['-r', 'ts-node/register/transpile-only', 'src/server.ts', '--check-config'], { cwd: ROOT, env });

    expect(result.code).toBe(code);
    expect((result.stdout + result.stderr).trim().split('\n')).toEqual([line]);
  });
});
