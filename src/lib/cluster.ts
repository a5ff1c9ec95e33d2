import cluster from 'node:cluster';
import { aggregateWorkersMetrics } from './cluster-metrics';

/** Set in the environment of the workers runWorkers forks (not of workers of some other cluster primary). */
const WORKER_MARK = 'ACCOUNTING_CLUSTER_WORKER';

/**
 * WEB_CONCURRENCY > 1: this process becomes a node:cluster primary that forks that many workers sharing
 * the listening port, each a whole service instance (its own pool, background jobs, caches: PostgreSQL
 * keeps them correct together exactly as it does for separate hosts). SIGTERM/SIGINT to the primary
 * drains every worker; the primary exits 0 only when all of them did. A worker that dies on its own is
 * replaced, at most once a second. The primary also aggregates the workers' metrics for /metrics.
 */
export function runWorkers(count: number, log: (message: string, fields?: Record<string, unknown>) => void): void {
  let stopping = false;
  let lastFork = 0;
  let failed = false;
  const fork = () => {
    const wait = Math.max(0, lastFork + 1_000 - Date.now());
    lastFork = Date.now() + wait;
    setTimeout(() => {
      if (!stopping) cluster.fork({ [WORKER_MARK]: '1' });
    }, wait);
  };
  // 'advanced' (structured clone) IPC: metrics cross it with NaN intact (JSON would make it null, then 0).
  cluster.setupPrimary({ serialization: 'advanced' });
  aggregateWorkersMetrics(log);
  for (let i = 0; i < count; i++) cluster.fork({ [WORKER_MARK]: '1' });
  lastFork = Date.now();

  cluster.on('exit', (worker, code, signal) => {
    if (stopping) {
      if (code !== 0) failed = true;
      if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(failed ? 1 : 0);
      return;
    }
    log('worker exited: starting another', { pid: worker.process.pid, code, signal });
    fork();
  });

  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    log('draining workers', { signal });
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill(signal);
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

export const isPrimary = () => cluster.isPrimary;
/** This process is a worker forked by runWorkers (WEB_CONCURRENCY > 1). */
export const isServiceWorker = () => cluster.isWorker && process.env[WORKER_MARK] === '1';
