/**
 * `npm run bench`: the hot-path benchmark (bench/run.ts: S1–S5 against baseline B1), then the usage
 * statistics benchmark (bench/usage-stats.ts: 10k / 100k / 1M records). Flags go to the hot-path run;
 * with --smoke the usage part runs one small size and writes nothing, so CI can keep both working.
 * `npm run bench -- --hot-path-only` skips the usage part.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';

const args = process.argv.slice(2);
const smoke = args.includes('--smoke');
const root = path.resolve(__dirname, '..', '..');

function run(command: string, commandArgs: string[]): void {
  const result = spawnSync(command, commandArgs, { cwd: root, stdio: 'inherit' });
  if (result.status !== 0) process.exit(result.status ?? 1);
}

run(process.execPath, [path.join(__dirname, 'run.js'), ...args.filter((a) => a !== '--hot-path-only')]);
if (!args.includes('--hot-path-only')) {
  const usageArgs = smoke ? ['--sizes', '2000', '--user-requests', '20', '--system-requests', '10', '--no-write'] : [];
  run('npm', ['run', '--silent', 'bench:usage', '--', ...usageArgs]);
}
// Budgets and metering (bench/budgets-metering.ts): token kinds and budgets vs without, and a hot org.
if (!args.includes('--hot-path-only')) run(process.execPath, [path.join(__dirname, 'budgets-metering.js'), ...(smoke ? ['--smoke'] : [])]);
