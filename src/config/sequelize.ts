import type { ConnectionOptions } from 'node:tls';
import pg from 'pg';
import { Sequelize, type Options } from 'sequelize';
import { databaseSslOptions } from '../db/ssl';
import type { Config } from './index';

/** How the service connects: built from the validated config (src/config/index.ts) by server.ts and scripts. */
export interface DatabaseOptions {
  url: string;
  poolMax: number;
  statementTimeoutMs: number;
  lockTimeoutMs: number;
  acquireTimeoutMs: number;
  /** TLS options from databaseSslOptions (src/db/ssl.ts); false or absent: no TLS. */
  ssl?: ConnectionOptions | false;
  applicationName?: string;
  /**
   * false when a pooler in transaction mode (PgBouncer) stands between the service and PostgreSQL: the hot
   * path then sends unnamed statements, and no session settings go in the startup packet (PgBouncer refuses
   * unknown startup parameters); the pooler or the role must set them instead (docs/scaling.md).
   */
  preparedStatements?: boolean;
  /** A streaming replica for reads that may be slightly stale (src/db/replica.ts). */
  replicaUrl?: string;
  replicaMaxLagMs?: number;
}

/** The service's database options, from the validated config (server, scripts and tests build them here). */
export function databaseOptionsFrom(config: Config, url: string, overrides: Partial<DatabaseOptions> = {}): DatabaseOptions {
  return {
    url,
    poolMax: config.DATABASE_POOL_MAX,
    statementTimeoutMs: config.DB_STATEMENT_TIMEOUT_MS,
    lockTimeoutMs: config.DB_LOCK_TIMEOUT_MS,
    acquireTimeoutMs: config.DB_ACQUIRE_TIMEOUT_MS,
    ssl: databaseSslOptions(config.DATABASE_SSL, config.DATABASE_SSL_CA),
    preparedStatements: config.DATABASE_PREPARED_STATEMENTS,
    replicaUrl: config.DATABASE_REPLICA_URL,
    replicaMaxLagMs: config.REPLICA_MAX_LAG_MS,
    ...overrides,
  };
}

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

/**
 * The one Sequelize instance of a process (or of a test's app): pool, timeouts, session settings and TLS
 * in one place. src/db/database.ts wraps it with the retry rules and the hot path's prepared statements.
 */
export function createSequelize(options: DatabaseOptions): Sequelize {
  const sequelizeOptions: Options & { databaseVersion: string } = {
    dialect: 'postgres',
    dialectModule: safePg,
    logging: false,
    // Known server family; skips a version probe on every new connection.
    databaseVersion: '15.0.0',
    pool: { max: options.poolMax, min: 0, idle: 10_000, acquire: options.acquireTimeoutMs, evict: 1_000 },
    dialectOptions: {
      application_name: options.applicationName ?? 'accounting-service',
      ...(options.preparedStatements === false ? {} : sessionSettings(options)),
      ssl: options.ssl || undefined,
      keepAlive: true,
    },
  };
  return new Sequelize(options.url, sequelizeOptions);
}

/**
 * Session settings sent at connect. Set explicitly rather than trusting the server defaults: the lock recipe
 * assumes READ COMMITTED, and cursors and day boundaries assume UTC. checkSessionSettings (src/db/database.ts)
 * verifies at boot that a pooler-managed connection has the two that matter.
 */
function sessionSettings(options: DatabaseOptions) {
  return {
    statement_timeout: options.statementTimeoutMs,
    lock_timeout: options.lockTimeoutMs,
    idle_in_transaction_session_timeout: Math.max(options.statementTimeoutMs * 2, 10_000),
    options: '-c default_transaction_isolation=read\\ committed -c timezone=UTC',
  };
}
