import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';

export const ROOT = path.resolve(__dirname, '..', '..');
export const BUNDLE_DIR = path.join(ROOT, 'dist', 'console');

/** Builds dist/console when missing or stale (the same script `npm start` runs first). */
export function ensureConsoleBuilt(): void {
  execFileSync(process.execPath, [path.join(ROOT, 'scripts', 'ensure-console.mjs')], { cwd: ROOT, stdio: 'pipe', timeout: 180_000 });
  if (!fs.existsSync(path.join(BUNDLE_DIR, 'index.html'))) throw new Error('the admin console was not built into dist/console');
}

/** Every file the browser downloads for the console, gzipped at level 9, in bytes. */
export function gzippedBundleBytes(): { total: number; files: { file: string; bytes: number }[] } {
  const files: { file: string; bytes: number }[] = [];
  const walk = (dir: string) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else files.push({ file: path.relative(BUNDLE_DIR, full), bytes: zlib.gzipSync(fs.readFileSync(full), { level: 9 }).length });
    }
  };
  walk(BUNDLE_DIR);
  return { total: files.reduce((sum, f) => sum + f.bytes, 0), files };
}
