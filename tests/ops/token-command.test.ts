import { execFile } from 'node:child_process';
import path from 'node:path';
import jwt from 'jsonwebtoken';
import { TEST_JWT_SECRET } from '../support/tokens';

/**
 * `npm run token -- ...`: the script as its own process with real arguments; the exit code and both streams.
 * (It runs the script as npm does, minus npm itself; the README test runs it through npm.)
 */
const ROOT = path.resolve(__dirname, '../..');

function token(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) =>
    execFile(
      process.execPath,
      ['-r', 'ts-node/register/transpile-only', 'scripts/token.ts', ...args],
      {
        cwd: ROOT,
        // DATABASE_URL only keeps the script away from the local generated secret; nothing connects to it.
        env: { PATH: process.env.PATH, HOME: process.env.HOME, JWT_SECRET: TEST_JWT_SECRET, DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none' },
        timeout: 60_000,
      },
      (error, stdout, stderr) => resolve({ code: error ? Number(error.code) : 0, stdout, stderr }),
    ),
  );
}

function claims(stdout: string): jwt.JwtPayload {
  return jwt.verify(stdout.trim(), TEST_JWT_SECRET, { algorithms: ['HS256'] }) as jwt.JwtPayload;
}

describe('npm run token', () => {
  test('When --help is given, then it prints the usage and no token', async () => {
    const result = await token('--help');

    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^Usage: npm run token -- --sub <user id>/);
    expect(result.stdout).toContain('--expires-in');
    expect(result.stdout).not.toMatch(/eyJ/);
  });

  test('When given a subject, role and lifetime, then it prints one token with exactly those claims', async () => {
    const result = await token('--sub', 'bob', '--role', 'supervisor', '--expires-in', '30m');

    expect(result).toMatchObject({ code: 0, stderr: '' });
    const payload = claims(result.stdout);
    expect(payload).toMatchObject({ sub: 'bob', role: 'supervisor', username: 'bob' });
    expect(payload.exp! - payload.iat!).toBe(30 * 60);
  });

  test.each([
    [['bob'], 'token: unexpected argument "bob": options need their name, e.g. --sub bob'],
    [['--sub'], 'token: --sub needs a value'],
    [['--sub', '--role', 'admin'], 'token: --sub needs a value'],
    [['--exp', '1h'], 'token: unknown option --exp (did you mean --expires-in?)'],
    [['--sub', 'bob', '--role', 'root'], 'token: --role must be user, supervisor or admin, got "root"'],
    [['--sub', 'bob', '--expires-in', 'soon'], 'token: --expires-in must be seconds or a number with s, m, h or d (e.g. 30m), got "soon"'],
  ])('When called with %p, then it refuses with exit code 2, says why, and prints no token', async (args, message) => {
    const result = await token(...args);

    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr.split('\n')[0]).toBe(message);
    expect(result.stderr).toContain('Usage: npm run token');
  });
});
