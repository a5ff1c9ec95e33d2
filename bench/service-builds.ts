/**
 * How the benchmarks start the service: production's node flags, the environment every bench instance gets,
 * and `name=<root>[:KEY=VALUE,...]` build specs for comparing other checkouts or settings side by side
 * (bench/run.ts --variant, bench/paired-cpu.ts).
 */
import fs from 'node:fs';
import path from 'node:path';
import { BENCH_JWT_SECRET } from './constants';

export const ROOT = path.resolve(__dirname, '../..');
/** Production refuses a public /metrics without a token; the bench scrapes it for event-loop and pool figures. */
export const METRICS_TOKEN = 'bench-metrics-token-not-a-secret';

/** Another build or setting of the service: <root>/dist/src/server.js with extra environment. */
export interface ServiceBuild {
  name: string;
  root: string;
  env: Record<string, string>;
}

/**
 * `name=<root>[:KEY=VALUE,KEY=VALUE]`: <root> is a checkout of some commit, built (`.` is this one);
 * `NODE_FLAGS=--a --b` replaces start:prod's node flags for it.
 */
export function parseServiceBuild(raw: string): ServiceBuild {
  const m = /^([A-Za-z0-9_-]{1,20})=([^:]+)(?::(.*))?$/.exec(raw);
  if (!m) throw new Error(`${raw}: expected name=<root>[:KEY=VALUE,...]`);
  const env: Record<string, string> = {};
  for (const pair of (m[3] ?? '').split(',').filter(Boolean)) {
    const [k, ...v] = pair.split('=');
    env[k] = v.join('=');
  }
  const root = path.resolve(ROOT, m[2]);
  if (!fs.existsSync(path.join(root, 'dist/src/server.js'))) throw new Error(`${m[1]}: no ${root}/dist/src/server.js (build it first)`);
  return { name: m[1], root, env };
}

/**
 * The node flags of `npm run start:prod` (e.g. --max-old-space-size), so the benchmark starts the service
 * exactly as production does.
 */
export function productionNodeFlags(): string[] {
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts?: Record<string, string> };
  const words = (pkg.scripts?.['start:prod'] ?? '').split(/\s+/);
  return words[0] === 'node' ? words.slice(1).filter((w) => w.startsWith('--')) : [];
}

/** A build's node flags: its NODE_FLAGS when given, otherwise production's. */
export function nodeFlagsOf(build: ServiceBuild): string[] {
  const flags = build.env.NODE_FLAGS;
  return flags !== undefined ? flags.split(' ').filter(Boolean) : productionNodeFlags();
}

/** The environment of a benchmarked service instance (as production runs it, at warn). */
export function serviceEnv(port: number, databaseUrl: string, poolMax: number, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const { NODE_FLAGS: _flags, ...env } = extra;
  return {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    TMPDIR: process.env.TMPDIR,
    NODE_ENV: 'production',
    LOG_LEVEL: 'warn',
    HOST: '127.0.0.1',
    PORT: String(port),
    DATABASE_URL: databaseUrl,
    DATABASE_POOL_MAX: String(poolMax),
    JWT_ALGORITHM: 'HS256',
    JWT_SECRET: BENCH_JWT_SECRET,
    SWEEPER_INTERVAL_MS: '5000',
    // Rate limiting would measure the limiter, not the hot path.
    RATE_LIMIT_ENABLED: 'false',
    METRICS_TOKEN,
    ...env,
  };
}
