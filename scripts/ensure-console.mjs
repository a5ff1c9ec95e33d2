// Builds the admin console (dist/console) when it is missing or older than its sources, so `npm start`
// on a fresh clone serves /admin with no extra command (it runs as the `prestart` script). Tests call it too.
// Without the build tools (a production install), it only warns: the service starts and /admin says it is not built.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const bundle = path.join(root, 'dist', 'console', 'index.html');
const sources = [path.join(root, 'console'), path.join(root, 'client'), path.join(root, 'package-lock.json')];

function newestMtime(target) {
  if (!fs.existsSync(target)) return 0;
  const stat = fs.statSync(target);
  if (!stat.isDirectory()) return stat.mtimeMs;
  let newest = 0;
  for (const entry of fs.readdirSync(target)) {
    if (entry === 'node_modules' || entry === 'dist') continue;
    newest = Math.max(newest, newestMtime(path.join(target, entry)));
  }
  return newest;
}

const builtAt = () => (fs.existsSync(bundle) ? fs.statSync(bundle).mtimeMs : 0);
const upToDate = () => builtAt() >= Math.max(...sources.map(newestMtime));
if (upToDate()) process.exit(0);

// One build at a time (parallel test files may all ask): the others wait for it and then find it done.
const lock = path.join(root, 'dist', '.console-build.lock');
fs.mkdirSync(path.dirname(lock), { recursive: true });
const deadline = Date.now() + 180_000;
for (;;) {
  try {
    fs.mkdirSync(lock);
    break;
  } catch {
    // A lock left by a killed build is stale after three minutes.
    if (fs.existsSync(lock) && Date.now() - fs.statSync(lock).mtimeMs > 180_000) fs.rmSync(lock, { recursive: true, force: true });
    if (Date.now() > deadline) throw new Error(`admin console: another build holds ${lock}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}
const release = () => fs.rmSync(lock, { recursive: true, force: true });
if (upToDate()) {
  release();
  process.exit(0);
}

let viteBin;
try {
  viteBin = createRequire(import.meta.url)
    .resolve('vite/package.json')
    .replace(/package\.json$/, path.join('bin', 'vite.js'));
} catch {
  console.warn('admin console: not built and vite is not installed (npm install without --omit=dev builds it); /admin will say so');
  release();
  process.exit(0);
}
console.log(builtAt() ? 'admin console: sources changed, rebuilding dist/console' : 'admin console: building dist/console');
const result = spawnSync(process.execPath, [viteBin, 'build', '--config', path.join(root, 'console', 'vite.config.ts')], {
  cwd: root,
  stdio: 'inherit',
});
release();
process.exit(result.status ?? 1);
