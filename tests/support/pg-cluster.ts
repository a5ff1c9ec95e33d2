import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { findFreePort } from '../../src/db/embedded-postgres';

const run = promisify(execFile);

/** The machine's PostgreSQL binaries (Debian's postgresql-15 package; PG_BIN overrides). */
export function pgBin(): string {
  const candidates = [process.env.PG_BIN, '/usr/lib/postgresql/15/bin', '/usr/lib/postgresql/16/bin', '/usr/lib/postgresql/17/bin'];
  const found = candidates.find((dir) => dir && fs.existsSync(path.join(dir, 'pg_basebackup')));
  if (!found) throw new Error('PostgreSQL server binaries with pg_basebackup not found (apt-get install postgresql-15, or set PG_BIN)');
  return found;
}

/** Runs a PostgreSQL binary as the postgres user when we are root (the server refuses to run as root). */
async function asPostgres(binary: string, args: string[]): Promise<string> {
  const file = path.join(pgBin(), binary);
  const { stdout } = process.getuid?.() === 0 ? await run('runuser', ['-u', 'postgres', '--', file, ...args]) : await run(file, args);
  return stdout;
}

export interface PgServer {
  port: number;
  dataDir: string;
  url(database: string): string;
  stop(): Promise<void>;
}

async function start(dataDir: string, port: number, socketDir: string): Promise<PgServer> {
  const log = path.join(path.dirname(dataDir), `${path.basename(dataDir)}.log`);
  const options = `-p ${port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=${socketDir} -c fsync=off`;
  await asPostgres('pg_ctl', ['-D', dataDir, '-o', options, '-l', log, '-w', '-t', '60', 'start']);
  let stopped = false;
  return {
    port,
    dataDir,
    url: (database) => `postgres://postgres@127.0.0.1:${port}/${database}`,
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await asPostgres('pg_ctl', ['-D', dataDir, '-m', 'fast', '-w', 'stop']).catch(() => undefined);
    },
  };
}

/**
 * A throwaway primary and a real streaming standby made from it with `pg_basebackup -R`, on free loopback
 * ports, in a temporary folder removed by `destroy`.
 */
export async function startPrimaryWithStandby(): Promise<{ primary: PgServer; standby: PgServer; destroy(): Promise<void> }> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'acct-replica-'));
  fs.chmodSync(root, 0o777);
  const primaryDir = path.join(root, 'primary');
  const standbyDir = path.join(root, 'standby');
  await asPostgres('initdb', ['-D', primaryDir, '-U', 'postgres', '-A', 'trust', '--no-sync']);
  fs.appendFileSync(path.join(primaryDir, 'pg_hba.conf'), '\nhost replication all 127.0.0.1/32 trust\n');
  const primary = await start(primaryDir, await findFreePort(), root);
  const servers: PgServer[] = [primary];
  try {
    await asPostgres('pg_basebackup', ['-h', '127.0.0.1', '-p', String(primary.port), '-U', 'postgres', '-D', standbyDir, '-R', '-X', 'stream', '--no-sync']);
    const standby = await start(standbyDir, await findFreePort(), root);
    servers.push(standby);
    return {
      primary,
      standby,
      destroy: async () => {
        for (const server of servers.reverse()) await server.stop();
        fs.rmSync(root, { recursive: true, force: true });
      },
    };
  } catch (error) {
    for (const server of servers) await server.stop();
    fs.rmSync(root, { recursive: true, force: true });
    throw error;
  }
}
