import fs from 'node:fs';
import path from 'node:path';
import { SequelizeStorage, Umzug } from 'umzug';
import type { Sequelize } from 'sequelize';

/** migrations/ sits at the repository root: two levels above src/db, three above dist/src/db. */
const candidates = [path.resolve(__dirname, '../../migrations'), path.resolve(__dirname, '../../../migrations')];
export const MIGRATIONS_DIR = candidates.find((dir) => fs.existsSync(dir)) ?? candidates[0];

// Any constant works; it only has to be the same in every instance of the service.
const MIGRATION_LOCK_KEY = 7_240_011;

/**
 * Migrations are pairs of plain SQL files, `<timestamp>_<name>.up.sql` and `.down.sql`, applied in
 * name order and recorded in "SequelizeMeta". Each runs in its own transaction.
 */
export function createMigrator(sequelize: Sequelize, log: (message: string) => void = () => undefined) {
  return new Umzug({
    migrations: {
      glob: ['*.up.sql', { cwd: MIGRATIONS_DIR }],
      resolve: ({ name, path: upPath }) => {
        const downPath = upPath!.replace(/\.up\.sql$/, '.down.sql');
        const run = (file: string) => async () => {
          const sql = fs.readFileSync(file, 'utf8');
          await sequelize.transaction((transaction) => sequelize.query(sql, { transaction }));
        };
        return { name: name.replace(/\.up\.sql$/, ''), up: run(upPath!), down: run(downPath) };
      },
    },
    storage: new SequelizeStorage({ sequelize }),
    logger: { info: (m) => log(JSON.stringify(m)), warn: (m) => log(JSON.stringify(m)), error: (m) => log(JSON.stringify(m)), debug: () => undefined },
  });
}

/**
 * Applies pending migrations. Several instances may start at once: a session-level advisory lock on one
 * dedicated connection makes the others wait and then find nothing left to do.
 */
export async function migrateToLatest(sequelize: Sequelize, log?: (message: string) => void): Promise<string[]> {
  const migrator = createMigrator(sequelize, log);
  const connection = (await sequelize.connectionManager.getConnection({ type: 'write' })) as unknown as {
    query(sql: string, params?: unknown[]): Promise<unknown>;
  };
  try {
    await connection.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
    const applied = await migrator.up();
    return applied.map((m) => m.name);
  } finally {
    await connection.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]).catch(() => undefined);
    sequelize.connectionManager.releaseConnection(connection as never);
  }
}

/** Names of migration files not yet applied (readiness fails while any are pending). */
export async function pendingMigrations(sequelize: Sequelize): Promise<string[]> {
  const pending = await createMigrator(sequelize).pending();
  return pending.map((m) => m.name);
}
