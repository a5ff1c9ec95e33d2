import type { ConnectionOptions } from 'node:tls';
import pg from 'pg';
import { QueryTypes, Sequelize, type Options, type Transaction } from 'sequelize';
import { defineModels, type Models } from '../models';

export interface DatabaseOptions {
  url: string;
  poolMax: number;
  statementTimeoutMs: number;
  lockTimeoutMs: number;
  acquireTimeoutMs: number;
  /** TLS options from databaseSslOptions (src/db/ssl.ts); false or absent: no TLS. */
  ssl?: ConnectionOptions | false;
  applicationName?: string;
}

export interface Database {
  sequelize: Sequelize;
  models: Models;
  /** Runs a raw statement and returns its rows. Pass `tx` for every statement inside a transaction. */
  query<T extends object>(sql: string, bind?: unknown[], tx?: Transaction): Promise<T[]>;
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
   * Runs `work` in one READ COMMITTED transaction, retrying the whole of it on transient failures.
   * A connection lost during COMMIT leaves the outcome unknown: that is retried only for work marked
   * `rerunnable` (it finds out itself whether it already committed, e.g. through an idempotency key).
   */
  transaction<T>(work: (tx: Transaction) => Promise<T>, options?: { rerunnable?: boolean }): Promise<T>;
  close(): Promise<void>;
}

// Serialization failure, deadlock, lock timeout, and connection loss mid-transaction.
const RETRYABLE_CODES = new Set(['40001', '40P01', '55P03', '57P01', '08006', '08003', '08000']);
const MAX_ATTEMPTS = 4;

export function pgErrorCode(error: unknown): string | undefined {
  const e = error as { original?: { code?: string }; parent?: { code?: string }; code?: string };
  return e?.original?.code ?? e?.parent?.code ?? (typeof e?.code === 'string' ? e.code : undefined);
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

/**
 * pg's Client with an `error` listener from birth. Sequelize attaches its own listener only after the
 * connection handshake resolves; an error arriving in that window (the server terminating a backend that
 * has just authenticated, in the same TCP read as ReadyForQuery) was emitted with no listener and killed
 * the whole process. Found by the reliability suite (tests/reliability/s4). The listener also marks the
 * connection invalid, which Sequelize's pool checks before handing a connection out.
 */
class SafeClient extends pg.Client {
  constructor(config?: string | pg.ClientConfig) {
    super(config);
    this.on('error', () => {
      (this as unknown as { _invalid: boolean })._invalid = true;
    });
  }
}
const safePg = Object.assign(Object.create(pg) as typeof pg, { Client: SafeClient });

export function createDatabase(options: DatabaseOptions): Database {
  const sequelizeOptions: Options & { databaseVersion: string } = {
    dialect: 'postgres',
    dialectModule: safePg,
    logging: false,
    // Known server family; skips a version probe on every new connection.
    databaseVersion: '15.0.0',
    pool: { max: options.poolMax, min: 0, idle: 10_000, acquire: options.acquireTimeoutMs, evict: 1_000 },
    dialectOptions: {
      application_name: options.applicationName ?? 'accounting-service',
      statement_timeout: options.statementTimeoutMs,
      lock_timeout: options.lockTimeoutMs,
      idle_in_transaction_session_timeout: Math.max(options.statementTimeoutMs * 2, 10_000),
      // Set explicitly rather than trusting the server default: the lock recipe assumes READ COMMITTED.
      options: '-c default_transaction_isolation=read\\ committed -c timezone=UTC',
      ssl: options.ssl || undefined,
      keepAlive: true,
    },
  };
  const sequelize = new Sequelize(options.url, sequelizeOptions);
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

  type PgConnection = { query(config: { name: string; text: string; values: unknown[] }): Promise<{ rows: object[] }> };
  async function prepared<T extends object>(name: string, sql: string, bind: unknown[] = [], { rerunnable = false } = {}): Promise<T[]> {
    for (let attempt = 1; ; attempt++) {
      let connection: PgConnection | undefined;
      let sent = false;
      try {
        connection = (await sequelize.connectionManager.getConnection({ type: 'write' })) as unknown as PgConnection;
        sent = true;
        const result = await connection.query({ name, text: sql, values: bind });
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

  return { sequelize, models, query, prepared, transaction, close: () => sequelize.close() };
}
