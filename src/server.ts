import 'dotenv/config';
import http from 'node:http';
import { createApp } from './app';
import { ConfigError, loadConfig, type Config } from './config';
import { createDatabase } from './db/database';
import { startEmbeddedPostgres, type EmbeddedDatabase } from './db/embedded-postgres';
import { migrateToLatest } from './db/migrator';
import { createLogger } from './lib/logger';
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
  }

  const db = createDatabase({
    url: databaseUrl,
    poolMax: config.DATABASE_POOL_MAX,
    statementTimeoutMs: config.DB_STATEMENT_TIMEOUT_MS,
    lockTimeoutMs: config.DB_LOCK_TIMEOUT_MS,
    acquireTimeoutMs: config.DB_ACQUIRE_TIMEOUT_MS,
    ssl: config.DATABASE_SSL,
  });
  const applied = await migrateToLatest(db.sequelize, (m) => logger.debug(m));
  if (applied.length) logger.info({ applied }, 'migrations applied');

  const { app, services, lifecycle } = createApp({ config, db, logger });
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

  let shuttingDown = false;
  const shutdown = async (signal: string) => {
    if (shuttingDown) return;
    shuttingDown = true;
    logger.info({ signal }, 'shutting down');
    lifecycle.draining = true;
    const forceExit = setTimeout(() => process.exit(1), config.SHUTDOWN_GRACE_MS).unref();
    server.close();
    server.closeIdleConnections();
    await jobs.stop();
    await db.close().catch(() => undefined);
    await embedded?.stop().catch(() => undefined);
    clearTimeout(forceExit);
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}

main().catch((error) => {
  console.error('failed to start:', error instanceof Error ? error.message : error);
  process.exit(1);
});
