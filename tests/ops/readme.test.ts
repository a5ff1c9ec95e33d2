import { execFile } from 'node:child_process';
import fs from 'node:fs';
import type { Server } from 'node:http';
import path from 'node:path';
import { envSchema } from '../../src/config';
import { createTestContext, type TestContext } from '../support/context';
import { availableOf, count } from '../support/db';
import { TEST_JWT_SECRET } from '../support/tokens';

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

describe('README quick tour', () => {
  let ctx: TestContext;
  let server: Server;
  beforeAll(async () => {
    ctx = await createTestContext();
    server = ctx.app.listen(0);
    await new Promise((resolve) => server.once('listening', resolve));
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
    await ctx.close();
  });

  /**
   * Runs the tour's commands as written, against this test's server, and returns each curl's HTTP status.
   * (Asynchronously: the server lives in this process, so blocking on the child would stall it.)
   */
  async function runTour(): Promise<number[]> {
    const blocks = [...section('Quick tour').matchAll(/```bash\n([\s\S]*?)```/g)].map((m) => m[1]);
    const script = blocks.find((b) => b.includes('curl'))!;
    const port = (server.address() as { port: number }).port;
    const prelude = `set -e\ncurl() { command curl --max-time 30 "$@" -w '\\n@@status=%{http_code}\\n'; }\n`;
    const stdout = await new Promise<string>((resolve, reject) =>
      execFile(
        'bash',
        ['-c', prelude + script.replaceAll('localhost:3000', `127.0.0.1:${port}`)],
        {
          cwd: ROOT,
          env: { PATH: process.env.PATH, HOME: process.env.HOME, NODE_ENV: 'test', DATABASE_URL: ctx.databaseUrl, JWT_SECRET: TEST_JWT_SECRET },
          timeout: 120_000,
        },
        (error, out, err) => (error ? reject(new Error(`tour failed: ${error.message}\n${err}`)) : resolve(out)),
      ),
    );
    return [...stdout.matchAll(/@@status=(\d+)/g)].map((m) => Number(m[1]));
  }

  test('When the tour is run as written, then every call succeeds; run again, it moves no more credits', async () => {
    const first = await runTour();
    const afterFirst = await availableOf(ctx.db, 'alice');
    const second = await runTour();

    const failed = (statuses: number[]) => statuses.filter((status) => status < 200 || status >= 300);
    // The last curl is piped into head, so its status line is cut off.
    expect(first.length).toBeGreaterThanOrEqual(7);
    expect({ statuses: first, failed: failed(first) }).toEqual({ statuses: first, failed: [] });
    expect(second).toHaveLength(first.length);
    expect({ statuses: second, failed: failed(second) }).toEqual({ statuses: second, failed: [] });
    expect(await availableOf(ctx.db, 'alice')).toBe(afterFirst);
    expect(await count(ctx.db, 'streaming_sessions', `id = 'tour-session-1' AND status = 'completed'`)).toBe(1);
    expect(await count(ctx.db, 'credit_allocations', `user_id = 'alice'`)).toBe(1);
  });
});
