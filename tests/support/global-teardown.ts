import fs from 'node:fs';
import { Client } from 'pg';

/** Drops this run's databases (when using a shared server) and stops the embedded server. */
export default async function globalTeardown(): Promise<void> {
  const adminUrl = process.env.TEST_ADMIN_URL;
  const runId = process.env.TEST_RUN_ID;
  if (globalThis.__EMBEDDED_PG__) {
    await globalThis.__EMBEDDED_PG__.stop();
    if (globalThis.__EMBEDDED_PG_DIR__) fs.rmSync(globalThis.__EMBEDDED_PG_DIR__, { recursive: true, force: true });
    return;
  }
  if (!adminUrl || !runId) return;
  const admin = new Client({ connectionString: adminUrl });
  await admin.connect();
  const { rows } = await admin.query<{ datname: string }>(
    `SELECT datname FROM pg_database WHERE datname LIKE $1`,
    [`acct\\_%${runId}%`],
  );
  for (const { datname } of rows) await admin.query(`DROP DATABASE IF EXISTS ${datname} WITH (FORCE)`);
  // The least-privilege run's role (TEST_AS_APP_ROLE=1), once no database grants it anything.
  if (process.env.TEST_APP_ROLE) await admin.query(`DROP ROLE IF EXISTS ${process.env.TEST_APP_ROLE}`).catch(() => undefined);
  await admin.end();
}
