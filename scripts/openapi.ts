/**
 * Writes the OpenAPI document to a file (default dist/openapi.json) with no database and no running
 * service: building the app connects to nothing, and the document comes from its route table.
 * Usage: npm run openapi [-- <file>]
 */
import fs from 'node:fs';
import path from 'node:path';
import { createApp } from '../src/app';
import { loadConfig } from '../src/config';
import { createDatabase } from '../src/db/database';
import { createLogger } from '../src/lib/logger';
import { buildOpenApiDocument } from '../src/openapi';

export async function offlineDocument() {
  const url = 'postgres://offline@127.0.0.1:1/offline';
  const config = loadConfig({ NODE_ENV: 'test', DATABASE_URL: url, JWT_SECRET: 'x'.repeat(32), RATE_LIMIT_ENABLED: 'false' });
  const db = createDatabase({ url, poolMax: 1, statementTimeoutMs: 1000, lockTimeoutMs: 1000, acquireTimeoutMs: 1000 });
  try {
    const { routes } = createApp({ config, db, logger: createLogger('silent') });
    return buildOpenApiDocument(routes);
  } finally {
    await db.close();
  }
}

if (require.main === module) {
  const file = path.resolve(process.argv[2] ?? 'dist/openapi.json');
  offlineDocument().then(
    (document) => {
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, JSON.stringify(document, null, 2) + '\n');
      console.log(`OpenAPI document written to ${path.relative(process.cwd(), file) || file}`);
    },
    (error) => {
      console.error(error);
      process.exit(1);
    },
  );
}
