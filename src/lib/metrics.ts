import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { RequestHandler } from 'express';
import type { Database } from '../db/database';
import { toCredits, type Micro } from './money';

/** Credit movements counted by `accounting_credits_<movement>_total`. */
export type CreditMovement = 'granted' | 'held' | 'captured' | 'charged' | 'released' | 'expired' | 'unpaid';

export const CREDIT_MOVEMENTS: readonly CreditMovement[] = ['granted', 'held', 'captured', 'charged', 'released', 'expired', 'unpaid'];

const MOVEMENT_HELP: Record<CreditMovement, string> = {
  granted: 'Credits granted to users (allocations)',
  held: 'Credits put on hold by streaming sessions',
  captured: 'Held credits captured as spent when sessions finalize, abort or expire',
  charged: 'Credits charged directly from available credits (usage records, finalize above the hold)',
  released: 'Held credits given back to their lots',
  expired: 'Credits that expired with their lots',
  unpaid: 'Usage that could not be paid (recorded as unpaid, never dropped)',
};

/** Scrape-time sources: a cheap query and the pool counters, provided by whoever owns them. */
export interface MetricsSources {
  /** Number of streaming sessions currently active (one indexed count). */
  activeSessions?: () => Promise<number>;
  /** Sequelize pool counters. */
  pool?: () => { size: number; available: number; using: number; waiting: number; max: number } | undefined;
  /** Running totals of the hot path's prepared statements (Database.statementStats). */
  statements?: () => { statements: number; acquireSeconds: number; executeSeconds: number };
  /** The read replica's replay lag in ms (null: unknown or unreachable); absent without a replica. */
  replicaLagMs?: () => Promise<number | null>;
}

/**
 * How the cluster's primary merges a gauge that every worker reads from the same database (with
 * WEB_CONCURRENCY > 1): one value, the largest of the workers' last reads, not their sum. Everything else
 * is per process and summed (prom-client's default), e.g. the pools' connections and requests served.
 */
const DATABASE_FACT = 'max';

/**
 * Every metric of one app instance, in its own Registry: createApp runs many times per test process,
 * and prom-client's global registry would refuse the second registration of the same name.
 */
export class Metrics {
  readonly registry = new Registry();
  private readonly sources: MetricsSources = {};

  readonly httpDuration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'HTTP request duration by method, route pattern and status',
    labelNames: ['method', 'route', 'status'] as const,
    // API calls are short; the upper buckets catch lock waits and pool starvation.
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });

  readonly httpInFlight = new Gauge({
    name: 'http_requests_in_flight',
    help: 'Requests being served right now',
    registers: [this.registry],
  });

  private readonly credits = new Map<CreditMovement, Counter>(
    CREDIT_MOVEMENTS.map((movement) => [
      movement,
      new Counter({ name: `accounting_credits_${movement}_total`, help: MOVEMENT_HELP[movement], registers: [this.registry] }),
    ]),
  );

  readonly dbReads = new Counter({
    name: 'accounting_db_reads_total',
    help: 'Statistics, list and export reads by where they were served: the streaming replica or the primary',
    labelNames: ['target'] as const,
    registers: [this.registry],
  });

  readonly partitionMonths = new Gauge({
    name: 'accounting_partition_months',
    help: 'Monthly partitions of each partitioned table (usage_records, credit_transactions, events)',
    labelNames: ['table'] as const,
    aggregator: DATABASE_FACT,
    registers: [this.registry],
  });

  readonly partitionNextMonthReady = new Gauge({
    name: 'accounting_partition_next_month_ready',
    help: "1 when next month's partition of the table exists (made ahead by the background job), else 0",
    labelNames: ['table'] as const,
    aggregator: 'min', // with workers: 0 if any worker's last check found it missing (the cautious answer)
    registers: [this.registry],
  });

  readonly sweeperRuns = new Counter({
    name: 'accounting_sweeper_runs_total',
    help: 'Background sweeper runs by outcome (ok or error)',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });

  readonly sweeperItemFailures = new Counter({
    name: 'accounting_sweeper_item_failures_total',
    help: 'Items (sessions, lots) whose expiry failed and were put in backoff, by job',
    labelNames: ['job'] as const,
    registers: [this.registry],
  });

  readonly sessionsExpired = new Counter({
    name: 'accounting_sessions_expired_total',
    help: 'Streaming sessions expired by the sweeper',
    registers: [this.registry],
  });

  readonly rateLimited = new Counter({
    name: 'http_rate_limited_total',
    help: 'Requests refused with 429 by limiter (ip or user)',
    labelNames: ['limiter'] as const,
    registers: [this.registry],
  });

  // Webhooks (issue 15): every attempt by outcome, and how long after its event a delivery first succeeded.
  readonly webhookDeliveries = new Counter({
    name: 'webhook_deliveries_total',
    help: 'Webhook delivery attempts by outcome (success, http_error, timeout, network_error, gave_up)',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });

  readonly webhookLag = new Histogram({
    name: 'webhook_delivery_lag_seconds',
    help: 'Time from an event being written to its first successful delivery to an endpoint',
    buckets: [0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400],
    registers: [this.registry],
  });

  constructor(options: { defaultMetrics?: boolean; prefix?: string } = {}) {
    const sources = this.sources;
    new Gauge({
      name: 'accounting_sessions_active',
      help: 'Streaming sessions currently active (holding credits)',
      registers: [this.registry],
      aggregator: DATABASE_FACT,
      async collect() {
        // A scrape must not fail because the database is briefly away; the last value stays.
        if (sources.activeSessions) this.set(await sources.activeSessions().catch(() => NaN));
      },
    });
    const pool = (name: 'size' | 'available' | 'using' | 'waiting' | 'max', help: string) =>
      new Gauge({
        name: `db_pool_connections_${name}`,
        help,
        registers: [this.registry],
        collect() {
          const counts = sources.pool?.();
          if (counts) this.set(counts[name]);
        },
      });
    pool('size', 'Connections open in the database pool');
    pool('available', 'Idle connections in the pool');
    pool('using', 'Connections lent to queries or transactions');
    pool('waiting', 'Requests waiting for a pool connection');
    pool('max', 'Configured pool maximum');
    // Hot-path statements (db.prepared): counters read at scrape time, so a request pays two clock reads, not a histogram.
    const statements = (name: string, help: string, field: 'statements' | 'acquireSeconds' | 'executeSeconds') =>
      new Counter({
        name,
        help,
        registers: [this.registry],
        collect() {
          const totals = sources.statements?.();
          if (totals) {
            this.reset();
            this.inc(totals[field]);
          }
        },
      });
    statements('db_hot_statements_total', 'Hot-path statements (one per initialize, finalize, balance) that completed', 'statements');
    statements('db_hot_statement_acquire_seconds_total', 'Time those statements waited for a pooled connection', 'acquireSeconds');
    statements('db_hot_statement_execute_seconds_total', 'Time from sending those statements to their result (network and PostgreSQL)', 'executeSeconds');
    new Gauge({
      name: 'db_replica_lag_seconds',
      help: 'Replay lag of the read replica (DATABASE_REPLICA_URL) as last measured; NaN when unknown, unreachable or not configured',
      registers: [this.registry],
      aggregator: DATABASE_FACT,
      async collect() {
        // Measured at most once a second (the router's own check), so scrapes cannot flood the replica.
        const lag = sources.replicaLagMs ? await sources.replicaLagMs().catch(() => null) : null;
        this.set(lag === null ? NaN : lag / 1000);
      },
    });
    for (const movement of CREDIT_MOVEMENTS) this.credits.get(movement)!.inc(0);
    this.sweeperRuns.inc({ outcome: 'ok' }, 0);
    this.sweeperRuns.inc({ outcome: 'error' }, 0);
    for (const job of ['session_expiry', 'lot_expiry']) this.sweeperItemFailures.inc({ job }, 0);
    // Process metrics (CPU, memory, event loop lag) only in real processes: they install global
    // observers, and tests build many apps per process.
    if (options.defaultMetrics) collectDefaultMetrics({ register: this.registry, prefix: options.prefix });
  }

  /** The Prometheus text of /metrics: this registry's, or every worker's through the cluster's primary (src/lib/cluster-metrics.ts). */
  exposition: () => Promise<string> = () => this.registry.metrics();

  /** Connects scrape-time sources (called once by the composition root). */
  connect(sources: MetricsSources): void {
    Object.assign(this.sources, sources);
  }

  /** Counts a credit movement; `amount` is in micro-credits like everywhere else. */
  recordCredits(movement: CreditMovement, amount: Micro): void {
    if (amount > 0n) this.credits.get(movement)!.inc(toCredits(amount));
  }

  /** Times every request under its route pattern (req.route.path), never the raw URL. */
  middleware(): RequestHandler {
    // One listener per request: a response emits 'close' once, after 'finish' or when the client went away.
    return (req, res, next) => {
      const started = performance.now();
      this.httpInFlight.inc();
      res.on('close', () => {
        this.httpInFlight.dec();
        this.httpDuration.observe({ method: req.method, route: routeLabel(req, res), status: String(res.statusCode) }, (performance.now() - started) / 1000);
      });
      next();
    };
  }
}

/** The route pattern of a request: a matched route's path, a mount label, or "unmatched" (404s). */
export function routeLabel(req: { route?: { path?: unknown }; baseUrl?: string }, res: { locals: Record<string, unknown> }): string {
  if (typeof res.locals.routeLabel === 'string') return res.locals.routeLabel;
  if (req.route && typeof req.route.path === 'string') return (req.baseUrl ?? '') + req.route.path;
  return 'unmatched';
}

/** Scrape-time sources backed by the database: active sessions (partial-index count) and pool counters. */
export function databaseMetricSources(db: Database, poolMax: number, cacheMs = 1000): MetricsSources {
  // Scrapes within cacheMs share one count: a flood of scrapes cannot drain the pool.
  let cached: { at: number; value: Promise<number> } | null = null;
  return {
    activeSessions: () => {
      const now = Date.now();
      if (!cached || now - cached.at >= cacheMs) {
        const value = db
          .query<{ n: string }>(`SELECT count(*) AS n FROM streaming_sessions WHERE status = 'active'`)
          .then(([row]) => Number(row.n));
        // A failed read is not cached: the next scrape tries again.
        value.catch(() => (cached = null));
        cached = { at: now, value };
      }
      return cached.value;
    },
    statements: () => db.statementStats,
    replicaLagMs: db.replica
      ? async () => {
          await db.replica!.useReplica();
          return db.replica!.lastLagMs;
        }
      : undefined,
    pool: () => {
      const pool = (db.sequelize.connectionManager as unknown as { pool?: Partial<Record<'size' | 'available' | 'using' | 'waiting', number>> }).pool;
      if (!pool || typeof pool.size !== 'number') return undefined;
      return { size: pool.size, available: pool.available ?? 0, using: pool.using ?? 0, waiting: pool.waiting ?? 0, max: poolMax };
    },
  };
}
