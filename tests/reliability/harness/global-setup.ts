import { execSync } from 'node:child_process';
import fs from 'node:fs';
import { FIGURES_FILE } from './figures';
import { REPO_ROOT } from './service';

/**
 * The suite runs the compiled service (`node dist/src/server.js`): it starts in a fraction of the time
 * ts-node needs, which matters when processes are killed and restarted many times. Build once per run
 * (RELIABILITY_SKIP_BUILD=1 reuses an existing dist/).
 */
export default async function globalSetup(): Promise<void> {
  fs.rmSync(FIGURES_FILE, { force: true });
  if (process.env.RELIABILITY_SKIP_BUILD === '1' && fs.existsSync(`${REPO_ROOT}/dist/src/server.js`)) return;
  execSync('npm run build --silent', { cwd: REPO_ROOT, stdio: 'inherit' });
}
