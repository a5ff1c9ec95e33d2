/** npm run migrate [-- --down]: applies pending migrations (or reverts the last one) on DATABASE_URL. */
import 'dotenv/config';
import { loadConfig } from '../src/config';
import { createDatabase } from '../src/db/database';
import { databaseSslOptions } from '../src/db/ssl';
import { startEmbeddedPostgres } from '../src/db/embedded-postgres';
import { createMigrator, migrateToLatest } from '../src/db/migrator';

async function main() {
  const config = loadConfig();
  const embedded = config.DATABASE_URL
    ? undefined
    : await startEmbeddedPostgres({ dataDir: config.EMBEDDED_PG_DIR, port: config.EMBEDDED_PG_PORT, persistent: true });
  const db = createDatabase({
    url: config.DATABASE_URL ?? embedded!.url,
    poolMax: 2,
    statementTimeoutMs: 600_000,
    lockTimeoutMs: 60_000,
    acquireTimeoutMs: 60_000,
    ssl: databaseSslOptions(config.DATABASE_SSL, config.DATABASE_SSL_CA),
  });
  try {
    if (process.argv.includes('--down')) {
      const reverted = await createMigrator(db.sequelize).down();
      console.log('reverted:', reverted.map((m) => m.name).join(', ') || '(nothing)');
    } else {
      const applied = await migrateToLatest(db.sequelize);
      console.log('applied:', applied.join(', ') || '(already up to date)');
    }
  } finally {
    await db.close();
    await embedded?.stop();
  }
}

main().catch((error) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
