import pg from 'pg';
import { Sequelize, type Options } from 'sequelize';

/** How the service connects: built from the validated config (src/config/index.ts) by server.ts and scripts. */
export interface DatabaseOptions {
  url: string;
  poolMax: number;
  statementTimeoutMs: number;
  lockTimeoutMs: number;
  acquireTimeoutMs: number;
  ssl?: boolean;
  applicationName?: string;
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
      statement_timeout: options.statementTimeoutMs,
      lock_timeout: options.lockTimeoutMs,
      idle_in_transaction_session_timeout: Math.max(options.statementTimeoutMs * 2, 10_000),
      // Set explicitly rather than trusting the server default: the lock recipe assumes READ COMMITTED.
      options: '-c default_transaction_isolation=read\\ committed -c timezone=UTC',
      ssl: options.ssl ? { rejectUnauthorized: false } : undefined,
      keepAlive: true,
    },
  };
  return new Sequelize(options.url, sequelizeOptions);
}
