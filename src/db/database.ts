import { ConnectionAcquireTimeoutError, QueryTypes, type Sequelize, type Transaction } from 'sequelize';
import { createRequire } from 'node:module';
import { createSequelize, type DatabaseOptions } from '../config/sequelize';
import { defineModels, type Models } from '../models';
import { ReplicaRouter, type ReadTarget } from './replica';

export type { DatabaseOptions } from '../config/sequelize';

export interface Database {
  sequelize: Sequelize;
  models: Models;
  /** Runs a raw statement and returns its rows. Pass `tx` for every statement inside a transaction. */
  query<T extends object>(sql: string, bind?: unknown[], tx?: Transaction): Promise<T[]>;
  /**
   * A read that may be slightly stale (statistics, lists, exports): served by the streaming replica while
   * its lag is under REPLICA_MAX_LAG_MS (DATABASE_REPLICA_URL), else by the primary. Never for money paths.
   */
  read<T extends object>(sql: string, bind?: unknown[]): Promise<T[]>;
  /** Calls `observer` with where each `read` was served (metrics). */
  observeReads(observer: (target: ReadTarget) => void): void;
  /** The replica's router, when one is configured. */
  replica?: ReplicaRouter;
  /**
   * The hot path's one round trip: a single statement in autocommit, sent as a named prepared statement
   * straight on a pooled connection (parsed once per connection, none of Sequelize's per-query work).
   * The statement succeeds or rolls back as a whole, so deadlocks, serialization failures and lock
   * timeouts are retried. A connection lost after sending it leaves the outcome unknown: that is retried
   * only when `rerunnable` (the statement finds out itself whether it already ran). `name` must be
   * unique per SQL text.
   */
  prepared<T extends object>(name: string, sql: string, bind?: unknown[], options?: { rerunnable?: boolean }): Promise<T[]>;
  /**
   * Running totals of the hot path's statements (`prepared`): how many, seconds spent waiting for a pooled
   * connection, seconds from sending to the result (network + PostgreSQL). Read at scrape time (metrics).
   */
  readonly statementStats: StatementStats;
  /**
   * Runs `work` in one READ COMMITTED transaction, retrying the whole of it on transient failures.
   * A connection lost during COMMIT leaves the outcome unknown: that is retried only for work marked
   * `rerunnable` (it finds out itself whether it already committed, e.g. through an idempotency key).
   */
  transaction<T>(work: (tx: Transaction) => Promise<T>, options?: { rerunnable?: boolean }): Promise<T>;
  close(): Promise<void>;
}

export interface StatementStats {
  statements: number;
  acquireSeconds: number;
  executeSeconds: number;
}

// Serialization failure, deadlock, lock timeout, and connection loss mid-transaction.
const RETRYABLE_CODES = new Set(['40001', '40P01', '55P03', '57P01', '08006', '08003', '08000']);
const MAX_ATTEMPTS = 4;

type PgErrorFields = { code?: unknown; detail?: string; constraint?: string };

/** A field PostgreSQL set on an error: on the driver's error that Sequelize wraps (original/parent), or on the error itself. */
export function pgErrorField<K extends keyof PgErrorFields>(error: unknown, field: K): PgErrorFields[K] {
  const e = error as { original?: PgErrorFields; parent?: PgErrorFields } & PgErrorFields;
  return e?.original?.[field] ?? e?.parent?.[field] ?? e?.[field];
}

export function pgErrorCode(error: unknown): string | undefined {
  const code = pgErrorField(error, 'code');
  return typeof code === 'string' ? code : undefined;
}

export function isConnectionError(error: unknown): boolean {
  const name = (error as { name?: string })?.name ?? '';
  if (/^SequelizeConnection|^SequelizeHostNotReachable|ConnectionAcquireTimeout|ConnectionRefused/.test(name)) return true;
  const code = pgErrorCode(error);
  if (code && (code.startsWith('08') || code === '57P01' || code === '57P02' || code === '57P03')) return true;
  const message = (error as { message?: string })?.message ?? '';
  return /Connection terminated|ECONNREFUSED|ECONNRESET|connection is closed|Client has encountered a connection error/i.test(
    message,
  );
}

/** The pool had no free connection within DB_ACQUIRE_TIMEOUT_MS: the process is saturated, not the database gone. */
export function isPoolExhausted(error: unknown): boolean {
  return /ConnectionAcquireTimeout/.test((error as { name?: string })?.name ?? '');
}

function isRetryable(error: unknown): boolean {
  // Waiting for the pool again would only queue the request behind the same crowd (up to 4 x the acquire
  // timeout): answer 503 at once and let the client back off.
  if (isPoolExhausted(error)) return false;
  const code = pgErrorCode(error);
  return (code !== undefined && RETRYABLE_CODES.has(code)) || isConnectionError(error);
}

/**
 * A single autocommit statement that failed this way was not executed, so it may be sent again on another
 * connection: the server had already terminated the (pooled, idle) connection it was sent on (57P01/57P02:
 * the FATAL comes before ReadyForQuery, so nothing committed), the client knew the connection was broken
 * and never sent it, or no connection could be opened. A pool always has this race after the server
 * drops idle connections; without the retry, the first request on each dead connection got a 503
 * (reliability scenario 4). "Connection terminated unexpectedly" is NOT here: the statement may have run.
 */
function neverRan(error: unknown): boolean {
  const code = pgErrorCode(error);
  if (code === '57P01' || code === '57P02' || code === '57P03') return true;
  const name = (error as { name?: string })?.name ?? '';
  const message = (error as { message?: string })?.message ?? '';
  return /ConnectionRefused/.test(name) || /not queryable|ECONNREFUSED/.test(message);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));


export function createDatabase(options: DatabaseOptions): Database {
  const sequelize = createSequelize(options);
  const models = defineModels(sequelize);

  async function query<T extends object>(sql: string, bind: unknown[] = [], tx?: Transaction): Promise<T[]> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await sequelize.query<T>(sql, { bind, type: QueryTypes.SELECT, transaction: tx, raw: true });
      } catch (error) {
        // Inside a transaction the whole transaction is retried (transaction() below), never one statement.
        if (tx || attempt >= MAX_ATTEMPTS || !neverRan(error)) throw error;
        await sleep(5 * attempt + Math.random() * 5 * attempt);
      }
    }
  }

  type PgConnection = { query(config: { name?: string; text: string; values: unknown[] }): Promise<{ rows: object[] }> };
  // Behind PgBouncer in transaction mode a named statement parsed on one server connection may be executed on
  // another: send the same statement unnamed (parsed on every call) instead.
  const statementName = (name: string) => (options.preparedStatements === false ? undefined : name);
  const statementStats: StatementStats = { statements: 0, acquireSeconds: 0, executeSeconds: 0 };
  // Sequelize's getConnection is its pool's acquire wrapped in two hook runs (none registered here: the
  // service sets no pool hooks) and a one-time server version check. Once that check has run, the hot path
  // takes the connection from the same pool directly, with the same timeout error as getConnection.
  type SequelizePool = { acquire(): Promise<PgConnection> };
  // The pool library's timeout error, from the copy Sequelize itself loads.
  const { TimeoutError: PoolTimeoutError } = createRequire(require.resolve('sequelize'))('sequelize-pool') as { TimeoutError: new () => Error };
  const connectionManager = sequelize.connectionManager as unknown as { pool: SequelizePool; getConnection(o: object): Promise<PgConnection> };
  const noPoolHooks = !sequelize.hasHook('beforePoolAcquire') && !sequelize.hasHook('afterPoolAcquire');
  async function acquire(): Promise<PgConnection> {
    const pool = connectionManager.pool;
    if (!noPoolHooks || (sequelize as unknown as { options: { databaseVersion?: unknown } }).options.databaseVersion === 0 || typeof pool?.acquire !== 'function') {
      return connectionManager.getConnection({ type: 'write' });
    }
    try {
      return await pool.acquire();
    } catch (error) {
      if (error instanceof PoolTimeoutError) throw new ConnectionAcquireTimeoutError(error as Error);
      throw error;
    }
  }
  async function prepared<T extends object>(name: string, sql: string, bind: unknown[] = [], { rerunnable = false } = {}): Promise<T[]> {
    for (let attempt = 1; ; attempt++) {
      let connection: PgConnection | undefined;
      let sent = false;
      try {
        const asked = performance.now();
        connection = await acquire();
        const got = performance.now();
        sent = true;
        const result = await connection.query({ name: statementName(name), text: sql, values: bind });
        statementStats.statements++;
        statementStats.acquireSeconds += (got - asked) / 1000;
        statementStats.executeSeconds += (performance.now() - got) / 1000;
        return result.rows as T[];
      } catch (error) {
        if (sent && !rerunnable && isConnectionError(error)) {
          // The statement may have committed: running it again could apply it twice.
          throw new Error('Connection lost during a statement; its outcome is unknown', { cause: error });
        }
        if (attempt >= MAX_ATTEMPTS || !isRetryable(error)) throw error;
      } finally {
        // A connection that failed is marked invalid by Sequelize and replaced on its next acquire.
        if (connection) sequelize.connectionManager.releaseConnection(connection as never);
      }
      const base = 10 * 2 ** (attempt - 1);
      await sleep(base + Math.random() * base);
    }
  }

  async function transaction<T>(work: (tx: Transaction) => Promise<T>, { rerunnable = false } = {}): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      let committing = false;
      try {
        return await sequelize.transaction(async (tx) => {
          const result = await work(tx);
          committing = true;
          return result;
        });
      } catch (error) {
        if (committing && !rerunnable && isConnectionError(error)) {
          // The COMMIT may have gone through: running the work again could apply it twice.
          throw new Error('Connection lost during COMMIT; the transaction outcome is unknown', { cause: error });
        }
        if (attempt >= MAX_ATTEMPTS || !isRetryable(error)) throw error;
        // Jittered exponential backoff: 10-20 ms, 20-40 ms, 40-80 ms.
        const base = 10 * 2 ** (attempt - 1);
        await sleep(base + Math.random() * base);
      }
    }
  }

  const replica = options.replicaUrl
    ? new ReplicaRouter(
        createSequelize({ ...options, url: options.replicaUrl, poolMax: Math.max(2, Math.ceil(options.poolMax / 2)), applicationName: 'accounting-service-reads' }),
        options.replicaMaxLagMs ?? 5_000,
      )
    : undefined;
  let readObserver: (target: ReadTarget) => void = () => undefined;

  async function read<T extends object>(sql: string, bind: unknown[] = []): Promise<T[]> {
    if (replica && (await replica.useReplica())) {
      try {
        const rows = await replica.replica.query<T>(sql, { bind, type: QueryTypes.SELECT, raw: true });
        readObserver('replica');
        return rows;
      } catch (error) {
        // A replica that went away falls back to the primary; a bad statement fails there the same way.
        if (!isConnectionError(error) && !isPoolExhausted(error)) throw error;
        replica.markDown();
      }
    }
    const rows = await query<T>(sql, bind);
    readObserver('primary');
    return rows;
  }

  return {
    sequelize,
    models,
    query,
    read,
    observeReads: (observer) => {
      readObserver = observer;
    },
    replica,
    prepared,
    statementStats,
    transaction,
    close: async () => {
      await Promise.all([sequelize.close(), replica?.replica.close()]);
    },
  };
}

/**
 * What the service assumes of every connection: READ COMMITTED (the lock recipe) and UTC (cursors and day
 * boundaries). The service sets both at connect, except behind a pooler (DATABASE_PREPARED_STATEMENTS=false),
 * where the pooler or the database role must; this names what is wrong instead of failing later in odd ways.
 */
export async function checkSessionSettings(db: Database): Promise<string[]> {
  const [row] = await db.query<{ timezone: string; isolation: string; lock_timeout: string }>(
    `SELECT current_setting('TimeZone') AS timezone, current_setting('default_transaction_isolation') AS isolation,
            current_setting('lock_timeout') AS lock_timeout`,
  );
  const problems: string[] = [];
  // Sequelize itself sets `TIME ZONE INTERVAL '+00:00'` on each connection, which PostgreSQL names <+00>-00.
  if (!['UTC', 'Etc/UTC', 'UCT', 'Etc/UCT', 'GMT', 'Etc/GMT', '<+00>-00'].includes(row.timezone)) problems.push(`TimeZone is ${row.timezone}, expected UTC`);
  if (row.isolation !== 'read committed') problems.push(`default_transaction_isolation is ${row.isolation}, expected read committed`);
  // Without it a request waits behind a busy account instead of answering 503/409 (IDEMPOTENCY_IN_PROGRESS).
  if (row.lock_timeout === '0') problems.push('lock_timeout is 0 (no limit), expected a few seconds');
  return problems;
}
