import cluster, { type Worker } from 'node:cluster';
import { AggregatorRegistry, type Registry } from 'prom-client';
import { AppError } from './errors';

/**
 * /metrics with WEB_CONCURRENCY > 1 (docs/scaling.md, "Metrics with workers"). Any worker may get a scrape;
 * it asks the primary, which collects every worker's registry over the cluster's IPC channel and merges
 * them with prom-client's AggregatorRegistry.aggregate (each metric by its `aggregator`: counters and
 * histograms summed). The collection protocol is ours rather than prom-client's clusterMetrics(), which
 * asks workers that cannot answer yet (still starting), waits its 5 s for them, and never forgets a request
 * that failed.
 */
type MetricsJson = Awaited<ReturnType<Registry['getMetricsAsJSON']>>;

/** worker → primary: this worker answers COLLECT from now on. */
const READY = 'accounting:metrics-ready';
/** worker → primary: a scrape wants the merged text; primary → worker: the text, or why not. */
const SCRAPE = 'accounting:metrics-scrape';
/** primary → worker: send your registry; worker → primary: it, as prom-client's JSON. */
const COLLECT = 'accounting:metrics-collect';

interface Message {
  type: typeof READY | typeof SCRAPE | typeof COLLECT;
  id?: number;
  text?: string;
  metrics?: MetricsJson;
  error?: string;
}

const isMessage = (message: unknown): message is Message => {
  const type = (message as { type?: unknown } | null)?.type;
  return type === READY || type === SCRAPE || type === COLLECT;
};

/** How long the primary waits for one worker's registry; a scrape fails (503) past it. */
export const COLLECT_TIMEOUT_MS = 5_000;

/** What of a worker that exited still counts: its counters and histograms (prom-client's JSON names types in lower case; its typings say an enum). */
const KEPT_AFTER_EXIT = new Set(['counter', 'histogram']);

const messageOf = (error: unknown) => (error instanceof Error ? error.message : String(error));

type Log = (message: string, fields?: Record<string, unknown>) => void;

/**
 * Requests awaiting a reply over IPC, by id. Each settles once: by its reply, its timeout, or a failure to
 * send it. `Tag` says whom it was sent to (a reply from anyone else is ignored).
 */
class PendingReplies<T, Tag = undefined> {
  private readonly pending = new Map<number, { tag: Tag; resolve: (value: T) => void; reject: (error: Error) => void; timer: NodeJS.Timeout }>();
  private nextId = 0;

  ask(tag: Tag, timeoutMs: number, timedOut: () => Error, send: (id: number, fail: (error: Error) => void) => void): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const id = this.nextId++;
      const timer = setTimeout(() => this.reject(id, tag, timedOut()), timeoutMs);
      this.pending.set(id, { tag, resolve, reject, timer });
      send(id, (error) => this.reject(id, tag, error));
    });
  }

  resolve(id: number, tag: Tag, value: T): void {
    this.take(id, tag)?.resolve(value);
  }

  reject(id: number, tag: Tag, error: Error): void {
    this.take(id, tag)?.reject(error);
  }

  rejectAll(tag: Tag, error: Error): void {
    for (const [id, request] of this.pending) if (request.tag === tag) this.reject(id, tag, error);
  }

  /** The request, removed, if it is still pending and was sent to `tag`. */
  private take(id: number, tag: Tag) {
    const request = this.pending.get(id);
    if (!request || request.tag !== tag) return undefined; // settled already, or not this sender's
    this.pending.delete(id);
    clearTimeout(request.timer);
    return request;
  }
}

/**
 * In the primary. Keeps what a scrape showed of each worker's counters and histograms, and when a worker
 * exits, keeps adding its last shown values to every later scrape: the instance's sums never go down when
 * a worker is replaced (Prometheus would read a drop as a counter reset and count the other workers'
 * whole totals again). What the worker counted after the last scrape is lost, as in a single process that
 * dies. Gauges of a worker that exited are dropped.
 */
export function aggregateWorkersMetrics(log: Log): void {
  const answering = new Set<Worker>();
  const collecting = new PendingReplies<MetricsJson, Worker>();
  const lastShown = new Map<Worker, { gathered: number; part: MetricsJson }>();
  let gatherings = 0;
  let retired: MetricsJson[] = [];
  let collapsing = false;

  // Retired parts are merged into one now and then (a crash loop must not grow them without bound). Scrapes
  // meanwhile read the unmerged list; only exits append to it, so the merged prefix is replaced exactly.
  const collapseRetired = async () => {
    if (collapsing || retired.length < 2) return;
    collapsing = true;
    try {
      const merging = retired.slice();
      const merged = await AggregatorRegistry.aggregate(merging).getMetricsAsJSON();
      retired = [merged, ...retired.slice(merging.length)];
    } finally {
      collapsing = false;
    }
  };

  const send = (worker: Worker, message: Message, onError: (error: Error) => void) => {
    if (!worker.isConnected()) return onError(new Error(`worker ${worker.process.pid} is disconnected`));
    worker.send(message, undefined, (error: Error | null) => {
      if (error) onError(error);
    });
  };

  const collect = (worker: Worker) =>
    collecting.ask(
      worker,
      COLLECT_TIMEOUT_MS,
      () => new Error(`worker ${worker.process.pid} did not send its metrics within ${COLLECT_TIMEOUT_MS} ms`),
      (id, fail) => send(worker, { type: COLLECT, id }, fail),
    );

  const gather = async (): Promise<string> => {
    const gathered = ++gatherings; // of two scrapes at once, the later-started one's parts are kept
    const workers = [...answering];
    // A worker that cannot be asked because it is going away (disconnected) is not a failed scrape; one that
    // is connected and does not answer is.
    const parts = await Promise.all(workers.map((worker) => collect(worker).catch((error: unknown) => (worker.isConnected() ? Promise.reject(error) : null))));
    // Decided in one synchronous step, so that every scrape shows each worker's counters at least as high
    // as the one before: a worker that exited meanwhile is in `retired` with what the last scrape showed of
    // it; one that is going away but not yet gone shows that same part.
    const shown: MetricsJson[] = [];
    workers.forEach((worker, i) => {
      if (!answering.has(worker)) return;
      const part = parts[i];
      if (part === null) {
        const last = lastShown.get(worker);
        if (last) shown.push(last.part);
        return;
      }
      shown.push(part);
      if ((lastShown.get(worker)?.gathered ?? 0) < gathered) {
        lastShown.set(worker, { gathered, part: part.filter((metric) => KEPT_AFTER_EXIT.has(String(metric.type))) });
      }
    });
    return AggregatorRegistry.aggregate([...shown, ...retired]).metrics();
  };

  // A reply to a worker that has just died must not take the primary down with an unhandled 'error'.
  cluster.on('fork', (worker) => worker.on('error', (error: Error) => log('worker IPC error', { pid: worker.process.pid, error: error.message })));
  cluster.on('exit', (worker) => {
    answering.delete(worker);
    const last = lastShown.get(worker);
    lastShown.delete(worker);
    if (last) retired.push(last.part);
    collapseRetired().catch((error: unknown) => log('merging retired workers\' metrics failed', { error: String(error) }));
    collecting.rejectAll(worker, new Error(`worker ${worker.process.pid} exited`));
  });
  cluster.on('message', (worker, message: unknown) => {
    if (!isMessage(message)) return;
    if (message.type === READY) answering.add(worker);
    else if (message.type === COLLECT && message.id !== undefined) {
      if (message.metrics) collecting.resolve(message.id, worker, message.metrics);
      else collecting.reject(message.id, worker, new Error(message.error ?? `worker ${worker.process.pid} sent no metrics`));
    } else if (message.type === SCRAPE) {
      const id = message.id;
      const ignore = () => undefined; // the asking worker is gone: nobody to answer
      gather().then(
        (text) => send(worker, { type: SCRAPE, id, text }, ignore),
        (error: unknown) => send(worker, { type: SCRAPE, id, error: messageOf(error) }, ignore),
      );
    }
  });
}

/**
 * In a worker: answers the primary's requests for `registry`, tells it so, and returns what reads the
 * merged metrics of every worker through the primary. Rejects with 503 SERVICE_UNAVAILABLE when they cannot
 * be gathered: one worker's figures alone would look like counters jumping between scrapes.
 */
export function workerMetricsReader(registry: Registry, timeoutMs = 2 * COLLECT_TIMEOUT_MS): () => Promise<string> {
  const scrapes = new PendingReplies<string>();
  const ignore = () => undefined; // the primary is gone: this worker is being stopped
  const send = (message: Message, onError: (error: Error | null) => void = ignore) => process.send!(message, undefined, undefined, onError);
  const unavailable = (reason: string) => new AppError('SERVICE_UNAVAILABLE', `The workers' metrics could not be gathered: ${reason}`);

  process.on('message', (message: unknown) => {
    if (!isMessage(message) || message.id === undefined) return;
    const id = message.id;
    if (message.type === COLLECT) {
      registry.getMetricsAsJSON().then(
        (metrics) => send({ type: COLLECT, id, metrics }),
        (error: unknown) => send({ type: COLLECT, id, error: messageOf(error) }),
      );
    } else if (message.type === SCRAPE) {
      if (message.text !== undefined) scrapes.resolve(id, undefined, message.text);
      else scrapes.reject(id, undefined, unavailable(message.error ?? 'no answer'));
    }
  });
  send({ type: READY });

  return () =>
    scrapes.ask(
      undefined,
      timeoutMs,
      () => unavailable(`the primary did not answer within ${timeoutMs} ms`),
      (id, fail) => send({ type: SCRAPE, id }, (error) => error && fail(unavailable(error.message))),
    );
}
