import { spawn } from 'node:child_process';
import path from 'node:path';

/**
 * The service's logger (src/lib/logger.ts) on stdout, in a real process that exits right after logging —
 * as the shutdown does ("shutdown complete", then process.exit). Every line must arrive whole and in the
 * order it was logged. The first line is larger than a pipe's buffer, so its write cannot finish before the
 * second line is logged: with an asynchronous destination the exit-time flush wrote the second line while
 * the first was still being written, and the first came out after it, cut, or not at all.
 */

const ROOT = path.resolve(__dirname, '../..');
const BIG = 200_000;

const CHILD = `
const { createLogger } = require('./src/lib/logger');
const logger = createLogger('info');
logger.info({ filler: 'x'.repeat(${BIG}) }, 'first');
setImmediate(() => {
  logger.info('last');
  process.exit(0);
});
`;

function runChild(): Promise<{ code: number | null; stdout: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-r', 'ts-node/register/transpile-only', '-e', CHILD], {
      cwd: ROOT,
      env: { PATH: process.env.PATH },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let stdout = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => (stdout += chunk));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout }));
  });
}

describe('logger at process exit', () => {
  test('When a process logs a line larger than a pipe buffer, then another, then exits at once, then both lines arrive whole and in order', async () => {
    for (let run = 0; run < 3; run++) {
      const { code, stdout } = await runChild();

      const lines = stdout.split('\n').filter(Boolean);
      const entries = lines.map((line) => JSON.parse(line) as { msg: string; filler?: string });
      expect(code).toBe(0);
      expect(entries.map((entry) => entry.msg)).toEqual(['first', 'last']);
      expect(entries[0].filler).toHaveLength(BIG);
    }
  });
});
