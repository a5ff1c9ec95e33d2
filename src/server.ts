import 'dotenv/config';
import http from 'node:http';
import { createApp } from './app';
import { ConfigError, loadConfig, type Config } from './config';
import { createDatabase } from './db/database';
import { databaseSslOptions } from './db/ssl';
import { startEmbeddedPostgres, type EmbeddedDatabase } from './db/embedded-postgres';
import { migrateToLatest } from './db/migrator';
import { createLogger } from './lib/logger';
import { Metrics } from './lib/metrics';
import { startBackgroundJobs } from './services/background-jobs';

function loadConfigOrExit(): Config {
  try {
    return loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.message);
      process.exit(1);
    }
    throw error;
  }
}

async function main(): Promise<void> {
  const config = loadConfigOrExit();
  const logger = createLogger(config.LOG_LEVEL, config.NODE_ENV === 'development' && process.stdout.isTTY);

  let embedded: EmbeddedDatabase | undefined;
  let databaseUrl = config.DATABASE_URL;
  if (!databaseUrl) {
    logger.info({ dataDir: config.EMBEDDED_PG_DIR }, 'no DATABASE_URL: starting embedded PostgreSQL');
    embedded = await startEmbeddedPostgres({ dataDir: config.EMBEDDED_PG_DIR, port: config.EMBEDDED_PG_PORT, persistent: true });
    databaseUrl = embedded.url;
    takeSignalsFromEmbeddedPostgres();
  }

  const db = createDatabase({
    url: databaseUrl,
    poolMax: config.DATABASE_POOL_MAX,
    statementTimeoutMs: config.DB_STATEMENT_TIMEOUT_MS,
    lockTimeoutMs: config.DB_LOCK_TIMEOUT_MS,
    acquireTimeoutMs: config.DB_ACQUIRE_TIMEOUT_MS,
    ssl: databaseSslOptions(config.DATABASE_SSL, config.DATABASE_SSL_CA),
  });
  const applied = await migrateToLatest(db.sequelize, (m) => logger.debug(m));
  if (applied.length) logger.info({ applied }, 'migrations applied');

  const metrics = new Metrics({ defaultMetrics: true });
  const { app, services, lifecycle, close: closeApp } = createApp({ config, db, logger, metrics });
  const server = http.createServer(
    {
      headersTimeout: config.HTTP_HEADERS_TIMEOUT_MS,
      requestTimeout: config.HTTP_REQUEST_TIMEOUT_MS,
      keepAliveTimeout: config.HTTP_KEEP_ALIVE_TIMEOUT_MS,
      // Node checks the two timeouts above only this often (30 s by default), which would let them overrun.
      connectionsCheckingInterval: Math.min(1_000, config.HTTP_HEADERS_TIMEOUT_MS),
    },
    app,
  );
  const jobs = startBackgroundJobs(services, config.SWEEPER_INTERVAL_MS, logger);

  await new Promise<void>((resolve) => server.listen(config.PORT, config.HOST, resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.PORT;
  logger.info({ port, embeddedDatabase: !!embedded }, `accounting service listening on http://localhost:${port}`);
  if (config.NODE_ENV !== 'production') {
    console.log(`\n  Accounting service: http://localhost:${port}   (health: /health, docs: /api/docs)`);
    console.log(`  Get a token:        npm run token -- --sub alice --role admin\n`);
  }

  // Graceful shutdown (issue #8): /ready turns 503 at once; after SHUTDOWN_DELAY_MS (time for load
  // balancers to notice) the listener closes, in-flight requests finish, background jobs stop, then
  // Redis, the pool and the embedded PostgreSQL close. Past SHUTDOWN_GRACE_MS the process exits 1.
  let shuttingDown = false;
  const shutdown = async (signal: string) => {
    if (shuttingDown) {
      logger.warn({ signal }, 'second signal during shutdown: exiting now');
      process.exit(1);
    }
    shuttingDown = true;
    const startedAt = Date.now();
    logger.info({ signal, graceMs: config.SHUTDOWN_GRACE_MS, delayMs: config.SHUTDOWN_DELAY_MS }, 'shutting down: draining');
    lifecycle.draining = true;
    const forceExit = setTimeout(() => {
      logger.error('shutdown grace period over: exiting with work still open');
      process.exit(1);
    }, config.SHUTDOWN_GRACE_MS);
    forceExit.unref();
    const stoppingJobs = jobs.stop();
    if (config.SHUTDOWN_DELAY_MS > 0) await new Promise((resolve) => setTimeout(resolve, config.SHUTDOWN_DELAY_MS));
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    // Keep-alive connections close as soon as their in-flight response is done.
    server.closeIdleConnections();
    const idleSweep = setInterval(() => server.closeIdleConnections(), 100);
    await Promise.all([closed, stoppingJobs]);
    clearInterval(idleSweep);
    logger.info('listener closed, requests finished, background jobs stopped');
    await closeApp().catch((error) => logger.warn({ err: error }, 'closing the rate-limit store failed'));
    await db.close().catch((error) => logger.warn({ err: error }, 'closing the database pool failed'));
    await embedded?.stop().catch((error) => logger.warn({ err: error }, 'stopping the embedded PostgreSQL failed'));
    clearTimeout(forceExit);
    logger.info({ tookMs: Date.now() - startedAt }, 'shutdown complete');
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}

/**
 * embedded-postgres installs async-exit-hook on import, which on SIGINT/SIGTERM stops PostgreSQL and
 * exits at once, under in-flight requests. Our own shutdown stops it last, so its signal hooks go.
 */
function takeSignalsFromEmbeddedPostgres(): void {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- an untyped CommonJS module, loaded only here
    const hook = require('async-exit-hook') as { unhookEvent(event: string): void; hookedEvents(): string[] };
    for (const event of ['SIGINT', 'SIGTERM']) if (hook.hookedEvents().includes(event)) hook.unhookEvent(event);
  } catch {
    // Not installed: nothing to take over.
  }
}

main().catch((error) => {
  console.error('failed to start:', error instanceof Error ? error.message : error);
  process.exit(1);
});
