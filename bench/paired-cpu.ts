/**
 * Compares builds (or settings) of the service by server CPU per request, paired in time.
 *
 *   node dist/bench/paired-cpu.js [--rounds 30] [--requests 3000] [--connections 20] [--path /health]
 *        name=<root>[:KEY=VALUE,...] name=<root>[:KEY=VALUE,...] ...
 *
 * Every build (bench/service-builds.ts; `.` is this checkout, built) serves the same GET on one fresh,
 * migrated database. Each round sends a batch of `--requests` to every build in turn (the order reversed
 * every other round) and divides the CPU the build's process used in its batch (utime + stime from
 * /proc/<pid>/stat) by the batch's requests. The report is each build's median and the median of its
 * per-round ratios to the first build. On a host whose speed drifts by tens of percent within minutes, a
 * whole-run req/s ratio (bench/run.ts) cannot tell a 5% lever from the drift; batches seconds apart see
 * the same host. Authenticated paths get a token for one bench user (mirrored by its first request).
 * Linux only (/proc). Loopback only, bounded: rounds × builds × requests, then it stops.
 */
import fs from 'node:fs';
import path from 'node:path';
import autocannon from 'autocannon';
import jwt from 'jsonwebtoken';
import { findFreePort } from '../src/db/embedded-postgres';
import { BENCH_JWT_SECRET, userId } from './constants';
import { migrate, startFreshDatabase } from './fresh-database';
import { startNode, stopAll, waitForHttp } from './processes';
import { nodeFlagsOf, parseServiceBuild, ROOT, serviceEnv } from './service-builds';

function option(argv: string[], name: string, fallback: number): number {
  const i = argv.indexOf(`--${name}`);
  const n = i >= 0 ? Number(argv[i + 1]) : fallback;
  if (!Number.isInteger(n) || n < 1 || n > 1_000_000) throw new Error(`--${name} must be a whole number from 1 to 1000000`);
  return n;
}

/**
 * CPU time (user + system) the process, its live children (WEB_CONCURRENCY's workers) and its reaped ones
 * have used, in ms (clock ticks of 10 ms). A child that is gone by the time it is read counts 0 (its ticks
 * move to the parent's reaped figures).
 */
function cpuMs(pid: number): number {
  let stat: string;
  let children: string;
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    children = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8');
  } catch {
    return 0;
  }
  const fields = stat.split(') ')[1].split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14]);
  const live = children.trim().split(' ').filter(Boolean);
  return ticks * 10 + live.reduce((sum, child) => sum + cpuMs(Number(child)), 0);
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const rounds = option(argv, 'rounds', 30);
  const requests = option(argv, 'requests', 3000);
  const connections = option(argv, 'connections', 20);
  const pathIndex = argv.indexOf('--path');
  const urlPath = pathIndex >= 0 ? argv[pathIndex + 1] : '/health';
  const builds = argv.filter((a, i) => /^[A-Za-z0-9_-]+=/.test(a) && !argv[i - 1]?.startsWith('--')).map(parseServiceBuild);
  if (builds.length < 2) throw new Error('name at least two builds: name=<root>[:KEY=VALUE,...]');

  const database = await startFreshDatabase();
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => void stopAll().finally(() => database.stop().finally(() => process.exit(130))));
  }
  fs.mkdirSync(path.join(ROOT, '.bench'), { recursive: true });
  const logDir = fs.mkdtempSync(path.join(ROOT, '.bench', 'paired-'));
  try {
    await migrate(database.url);
    const servers = [];
    for (const build of builds) {
      const port = await findFreePort();
      const child = startNode(build.name, path.join(build.root, 'dist/src/server.js'), serviceEnv(port, database.url, 6, build.env), path.join(logDir, `${build.name}.log`), nodeFlagsOf(build));
      await waitForHttp(`http://127.0.0.1:${port}/ready`, child);
      servers.push({ build, port, pid: child.pid!, perRequestUs: [] as number[] });
    }
    const authorization = `Bearer ${jwt.sign({ sub: userId(1), role: 'user' }, BENCH_JWT_SECRET, { algorithm: 'HS256', expiresIn: '2h' })}`;
    const batch = (port: number, amount: number) =>
      new Promise<autocannon.Result>((resolve, reject) => {
        autocannon({ url: `http://127.0.0.1:${port}${urlPath}`, connections, amount, headers: { authorization } }, (error, result) => (error ? reject(error) : resolve(result)));
      });
    for (const server of servers) {
      const warm = await batch(server.port, Math.min(requests, 3000)); // JIT, pool, caches
      if (warm.non2xx > 0) throw new Error(`${server.build.name}: ${warm.non2xx} non-2xx answers to GET ${urlPath}`);
    }
    for (let round = 0; round < rounds; round++) {
      for (const server of round % 2 === 0 ? servers : [...servers].reverse()) {
        const before = cpuMs(server.pid);
        const result = await batch(server.port, requests);
        if (result.non2xx > 0 || result.errors > 0) throw new Error(`${server.build.name}: ${result.non2xx} non-2xx, ${result.errors} errors`);
        server.perRequestUs.push(((cpuMs(server.pid) - before) * 1000) / requests);
      }
    }
    const [first] = servers;
    console.log(`GET ${urlPath}: ${rounds} rounds of ${requests} requests per build at c=${connections}; server CPU µs per request`);
    for (const server of servers) {
      // A batch too short for the 10-ms CPU clock can read 0: such rounds have no ratio.
      const ratios = server.perRequestUs.flatMap((us, i) => (first.perRequestUs[i] > 0 ? [us / first.perRequestUs[i]] : []));
      const versus = server === first || ratios.length === 0 ? '' : `, median of per-round ratios to ${first.build.name} ${median(ratios).toFixed(3)}`;
      console.log(`${server.build.name}: median ${median(server.perRequestUs).toFixed(1)} µs${versus}  [${server.perRequestUs.map((us) => us.toFixed(0)).join(' ')}]`);
    }
  } finally {
    await stopAll();
    await database.stop();
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    void stopAll().finally(() => process.exit(1));
  },
);
