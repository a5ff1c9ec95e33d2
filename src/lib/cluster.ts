import cluster from 'node:cluster';
import { AggregatorRegistry, type Registry } from 'prom-client';

/** The IPC message a worker sends the primary for every worker's metrics, and the primary's answer. */
const METRICS_MESSAGE = 'accounting:cluster-metrics';
interface MetricsMessage {
  type: typeof METRICS_MESSAGE;
  id: number;
  text?: string;
  error?: string;
}
const isMetricsMessage = (message: unknown): message is MetricsMessage =>
  typeof message === 'object' && message !== null && (message as { type?: unknown }).type === METRICS_MESSAGE;

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
      if (!stopping) cluster.fork();
    }, wait);
  };
  answerMetricsRequests();
  for (let i = 0; i < count; i++) cluster.fork();
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
export const isWorker = () => cluster.isWorker;

/**
 * In the primary: a worker serving /metrics asks for every worker's metrics, which prom-client's
 * AggregatorRegistry collects from all workers over IPC and merges (counters and histograms summed, each
 * metric by its `aggregator`). Any worker can answer a scrape, so each one asks here.
 */
function answerMetricsRequests(): void {
  const aggregator = new AggregatorRegistry();
  cluster.on('message', (worker, message: unknown) => {
    if (!isMetricsMessage(message)) return;
    aggregator.clusterMetrics().then(
      (text) => worker.send({ type: METRICS_MESSAGE, id: message.id, text }),
      (error: unknown) => worker.send({ type: METRICS_MESSAGE, id: message.id, error: error instanceof Error ? error.message : String(error) }),
    );
  });
}

/**
 * In a worker: lets the primary read this worker's `registry` (prom-client answers its requests), and
 * returns what reads every worker's metrics, aggregated, through the primary. Rejects when the primary does
 * not answer within `timeoutMs` (prom-client's own wait for the workers is 5 s).
 */
export function clusterMetricsReader(registry: Registry, timeoutMs = 10_000): () => Promise<string> {
  AggregatorRegistry.setRegistries([registry]);
  new AggregatorRegistry(); // constructing one installs prom-client's answering listener in this worker
  const pending = new Map<number, { resolve: (text: string) => void; reject: (error: Error) => void; timer: NodeJS.Timeout }>();
  let nextId = 0;
  process.on('message', (message: unknown) => {
    if (!isMetricsMessage(message)) return;
    const request = pending.get(message.id);
    if (!request) return; // timed out already
    pending.delete(message.id);
    clearTimeout(request.timer);
    if (message.text !== undefined) request.resolve(message.text);
    else request.reject(new Error(message.error ?? 'no metrics'));
  });
  return () =>
    new Promise<string>((resolve, reject) => {
      const id = nextId++;
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(new Error(`the primary did not answer within ${timeoutMs} ms`));
      }, timeoutMs);
      pending.set(id, { resolve, reject, timer });
      process.send!({ type: METRICS_MESSAGE, id } satisfies MetricsMessage, undefined, undefined, (error: Error | null) => {
        if (!error) return;
        pending.delete(id);
        clearTimeout(timer);
        reject(error);
      });
    });
}
