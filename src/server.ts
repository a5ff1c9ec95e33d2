import 'dotenv/config';
import http from 'node:http';
import net from 'node:net';
import { createApp } from './app';
import { ConfigError, loadConfig, localSecretPath, type Config } from './config';
import { databaseOptionsFrom } from './config/sequelize';
import { checkSessionSettings, createDatabase } from './db/database';
import { checkDataFolderIsFree, startEmbeddedPostgres, type EmbeddedDatabase } from './db/embedded-postgres';
import { migrateToLatest } from './db/migrator';
import { createLogger } from './lib/logger';
import { isPrimary, isServiceWorker, runWorkers } from './lib/cluster';
import { workerMetricsReader } from './lib/cluster-metrics';
import { Metrics } from './lib/metrics';
import { clientErrorHandler } from './middleware/error.middleware';
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

/** Says in one line what a failed listen means and which variable to change (printed, exit 1). */
function listenProblem(error: NodeJS.ErrnoException, config: Config): Error {
  const where = `port ${config.PORT} on ${config.HOST}`;
  if (error.code === 'EADDRINUSE') {
    return new Error(`${where} is already in use (the service already running?): stop that process, or set PORT to a free port, e.g. PORT=${config.PORT + 1}`);
  }
  if (error.code === 'EACCES') return new Error(`${where} needs privileges: set PORT to a port above 1023`);
  if (error.code === 'EADDRNOTAVAIL') return new Error(`HOST ${config.HOST} is not an address of this machine: set HOST (e.g. 0.0.0.0 or 127.0.0.1)`);
  return error;
}

/**
 * Fails fast on a port someone else holds, before the database starts or a migration runs. (The real
 * listen comes after migrations, so another process could still take the port in between; listen()
 * reports that the same way.)
 */
async function checkPortIsFree(config: Config): Promise<void> {
  if (config.PORT === 0) return;
  await new Promise<void>((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', (error: NodeJS.ErrnoException) => reject(listenProblem(error, config)));
    probe.listen(config.PORT, config.HOST, () => probe.close(() => resolve()));
  });
}

/** Starts one service instance: database (embedded unless DATABASE_URL), migrations, HTTP listener, background jobs. */
export async function startServer(config: Config = loadConfigOrExit()): Promise<void> {
  // Before the database starts or a migration runs: a service already running here, then the port.
  if (!config.DATABASE_URL) checkDataFolderIsFree(config.EMBEDDED_PG_DIR);
  await checkPortIsFree(config);
  const logger = createLogger(config.LOG_LEVEL, config.NODE_ENV === 'development' && process.stdout.isTTY);

  let embedded: EmbeddedDatabase | undefined;
  let databaseUrl = config.DATABASE_URL;
  if (!databaseUrl) {
    logger.info({ dataDir: config.EMBEDDED_PG_DIR }, 'no DATABASE_URL: starting embedded PostgreSQL');
    embedded = await startEmbeddedPostgres({ dataDir: config.EMBEDDED_PG_DIR, port: config.EMBEDDED_PG_PORT, persistent: true });
    databaseUrl = embedded.url;
    takeSignalsFromEmbeddedPostgres();
  }

  const db = createDatabase(databaseOptionsFrom(config, databaseUrl));
  const unsafeSettings = await checkSessionSettings(db);
  if (unsafeSettings.length) throw new Error(`database session settings: ${unsafeSettings.join('; ')} (see docs/scaling.md, PgBouncer)`);
  const applied = await migrateToLatest(db.sequelize, (m) => logger.debug(m));
  if (applied.length) logger.info({ applied }, 'migrations applied');

  const metrics = new Metrics({ defaultMetrics: true });
  // A worker of WEB_CONCURRENCY > 1 answers /metrics for the whole cluster (any worker may get the scrape).
  if (isServiceWorker()) metrics.exposition = workerMetricsReader(metrics.registry);
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
  server.on('clientError', clientErrorHandler); // malformed or oversize requests: the API's error format
  // The ledger's event functions read LOW_BALANCE_THRESHOLDS from the database (issue 15).
  await services.events.syncSettings();
  // Monthly partitions ahead (issue 18); the background job retries if this fails (say, a lock timeout).
  await services.partitions
    .ensure()
    .then((partitionsCreated) => partitionsCreated > 0 && logger.info({ partitionsCreated }, 'monthly partitions created ahead'))
    .catch((error) => logger.warn({ err: error }, 'could not create the monthly partitions ahead; the background job retries'));
  const jobs = startBackgroundJobs(services, config.SWEEPER_INTERVAL_MS, logger, config.WEBHOOK_DISPATCH_INTERVAL_MS);

  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => reject(listenProblem(error, config)));
    server.listen(config.PORT, config.HOST, resolve);
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.PORT;
  logger.info({ port, embeddedDatabase: !!embedded }, `accounting service listening on http://localhost:${port}`);
  if (config.NODE_ENV !== 'production') {
    console.log(`\n  Accounting service: http://localhost:${port}   (health: /health, docs: /api/docs)`);
    console.log(`  Get a token:        npm run token -- --sub alice --role admin`);
    if (embedded && !config.JWT_SECRET && config.JWT_ALGORITHM === 'HS256') console.log(`  JWT secret:         ${localSecretPath()}`);
    console.log('');
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

function main(): void {
  const config = loadConfigOrExit();
  // `--check-config`: validate the environment and stop (docker-compose runs it before the service).
  if (process.argv.includes('--check-config')) {
    console.log('configuration is valid');
    return;
  }
  if (config.WEB_CONCURRENCY > 1 && isPrimary()) {
    runWorkers(config.WEB_CONCURRENCY, (message, fields) => console.error(JSON.stringify({ msg: message, ...fields })));
    return;
  }
  startServer(config).catch((error) => {
    console.error(`failed to start: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  });
}

if (require.main === module) main();
