import fs from 'node:fs';
import { FIGURES_FILE } from './figures';

/** Prints every scenario's figure together, so CI logs end with the suite's results in one block. */
export default async function globalTeardown(): Promise<void> {
  if (!fs.existsSync(FIGURES_FILE)) return;
  const lines = fs.readFileSync(FIGURES_FILE, 'utf8').trim().split('\n');
  process.stdout.write(`\nReliability figures (${FIGURES_FILE}):\n${lines.map((l) => `  ${l}`).join('\n')}\n`);
}
