import fs from 'node:fs';
import path from 'node:path';
import { ControlledPostgres } from './postgres';
import { ServiceProcess } from './service';

export const LOG_ROOT = path.resolve(__dirname, '../../../.data/reliability/logs');

export interface Cluster {
  pg: ControlledPostgres;
  services: ServiceProcess[];
  logDir: string;
  /** Stops every service process (SIGKILL if graceful stop hangs) and destroys the database. */
  stop(): Promise<void>;
}

/**
 * A scenario's world: its own PostgreSQL (migrated) and `instances` service processes on it, all ready.
 * `env` applies to every instance; `envOf(i)` adds per-instance settings. Logs go to
 * .data/reliability/logs/<name>/ and are kept after the run for inspection.
 */
export async function startCluster(options: {
  name: string;
  instances: number;
  env?: Record<string, string>;
  envOf?: (i: number) => Record<string, string>;
}): Promise<Cluster> {
  const logDir = path.join(LOG_ROOT, options.name);
  fs.rmSync(logDir, { recursive: true, force: true });
  fs.mkdirSync(logDir, { recursive: true });
  const pg = await ControlledPostgres.start();
  const services = Array.from(
    { length: options.instances },
    (_, i) =>
      new ServiceProcess({
        name: `${options.name}-${i + 1}`,
        databaseUrl: pg.url,
        logDir,
        env: { ...options.env, ...options.envOf?.(i) },
      }),
  );
  const cluster: Cluster = {
    pg,
    services,
    logDir,
    async stop() {
      await Promise.all(services.map((s) => s.stop().catch(() => s.kill())));
      fs.writeFileSync(path.join(logDir, 'postgres.log'), pg.logLines.join(''));
      await pg.destroy();
    },
  };
  try {
    // Together, as a deployment would: the migration advisory lock makes them take turns.
    await Promise.all(services.map((s) => s.start()));
  } catch (error) {
    await cluster.stop();
    throw error;
  }
  return cluster;
}
