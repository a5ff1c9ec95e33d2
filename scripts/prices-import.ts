/**
 * npm run prices:import -- <file.json> [--credits-per-usd 100] [--dry-run]
 * Imports a price list in LiteLLM's model_prices_and_context_window.json shape into DATABASE_URL, exactly
 * as POST /api/models/import does (a new version only for models whose prices changed), without the HTTP
 * body limit, so the whole upstream file can be imported. The file is read locally: no network.
 */
import 'dotenv/config';
import fs from 'node:fs';
import { loadConfig } from '../src/config';
import { databaseSslOptions } from '../src/db/ssl';
import { createDatabase } from '../src/db/database';
import { startEmbeddedPostgres } from '../src/db/embedded-postgres';
import { migrateToLatest } from '../src/db/migrator';
import { parseCredits } from '../src/lib/money';
import { parseLiteLlm } from '../src/metering/litellm';
import { PriceService } from '../src/services/price.service';

export interface ImportArgs {
  file: string;
  creditsPerUsd: string;
  dryRun: boolean;
}

export function parseArgs(argv: string[]): ImportArgs {
  const args: ImportArgs = { file: '', creditsPerUsd: '100', dryRun: false };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--dry-run') args.dryRun = true;
    else if (argv[i] === '--credits-per-usd') args.creditsPerUsd = argv[++i] ?? '';
    else if (!args.file) args.file = argv[i];
    else throw new Error(`unexpected argument ${argv[i]}`);
  }
  if (!args.file) throw new Error('usage: npm run prices:import -- <file.json> [--credits-per-usd 100] [--dry-run]');
  return args;
}

/** Runs one import against a PriceService; returns the same shape as the HTTP endpoint. */
export async function importFile(prices: PriceService, args: ImportArgs, actor = 'prices-import') {
  const rate = parseCredits(args.creditsPerUsd);
  if (!rate.ok || rate.value <= 0n) throw new Error(`--credits-per-usd ${rate.ok ? 'must be greater than 0' : rate.error}`);
  const list: unknown = JSON.parse(fs.readFileSync(args.file, 'utf8'));
  if (typeof list !== 'object' || list === null || Array.isArray(list)) throw new Error(`${args.file} is not a JSON object of models`);
  const { entries, skipped } = parseLiteLlm(list as Record<string, unknown>, rate.value);
  const result = await prices.importPrices(entries, actor, args.dryRun);
  return { created: result.created, unchanged: result.unchanged, skipped };
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
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
    await migrateToLatest(db.sequelize);
    const result = await importFile(new PriceService(db, 0), args);
    console.log(JSON.stringify({ dryRun: args.dryRun, ...result }, null, 2));
  } finally {
    await db.close();
    await embedded?.stop();
  }
}

if (require.main === module) {
  main().catch((error) => {
    console.error(error instanceof Error ? error.message : error);
    process.exit(1);
  });
}
