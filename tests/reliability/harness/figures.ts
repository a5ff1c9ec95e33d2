import fs from 'node:fs';
import path from 'node:path';

/** Where the run's figures accumulate; the suite's global teardown prints them together at the end. */
export const FIGURES_FILE = path.resolve(__dirname, '../../../.data/reliability/figures.txt');

/**
 * Prints a scenario's headline figure, e.g. "scenario 1: accepted=100/1000 across 3 instances".
 * Written straight to stdout (not console.log, which jest decorates) and kept for the final summary.
 */
export function figure(line: string): void {
  process.stdout.write(`\n  [reliability] ${line}\n`);
  fs.mkdirSync(path.dirname(FIGURES_FILE), { recursive: true });
  fs.appendFileSync(FIGURES_FILE, line + '\n');
}
