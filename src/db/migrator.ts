import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { SequelizeStorage, Umzug } from 'umzug';
import { QueryTypes, type Sequelize } from 'sequelize';

/** migrations/ sits at the repository root: two levels above src/db, three above dist/src/db. */
const candidates = [path.resolve(__dirname, '../../migrations'), path.resolve(__dirname, '../../../migrations')];
export const MIGRATIONS_DIR = candidates.find((dir) => fs.existsSync(dir)) ?? candidates[0];

/**
 * The ledger's SQL functions, one `.sql` file each (src/ledger/sql). dist/ has no copy of them, so both
 * the source and the compiled server read the one folder under src/.
 */
const ledgerCandidates = [path.resolve(__dirname, '../ledger/sql'), path.resolve(__dirname, '../../../src/ledger/sql')];
export const LEDGER_SQL_DIR = ledgerCandidates.find((dir) => fs.existsSync(dir)) ?? ledgerCandidates[0];

// Any constant works; it only has to be the same in every instance of the service.
const MIGRATION_LOCK_KEY = 7_240_011;

const REPEATABLE_TABLE = 'repeatable_migrations';

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

interface RepeatableFile {
  /** The function's name: the file name without `.sql`. */
  name: string;
  sql: string;
  checksum: string;
}

/** Every ledger function file, in name order, with the checksum of its text. */
export function ledgerFunctionFiles(): RepeatableFile[] {
  return fs
    .readdirSync(LEDGER_SQL_DIR)
    .filter((file) => file.endsWith('.sql'))
    .sort()
    .map((file) => {
      const sql = fs.readFileSync(path.join(LEDGER_SQL_DIR, file), 'utf8');
      return { name: file.replace(/\.sql$/, ''), sql, checksum: crypto.createHash('sha256').update(sql).digest('hex') };
    });
}

/**
 * Repeatable migrations (Flyway's `R__` files): each ledger function lives in one file and is (re)applied
 * whenever its text changed since it was last applied, or the function is missing (a down migration
 * dropped it). They run after the timestamped migrations, all in one transaction, with function bodies
 * checked only at call time so that files may call each other in any order.
 */
async function staleRepeatables(sequelize: Sequelize): Promise<RepeatableFile[]> {
  const files = ledgerFunctionFiles();
  const [table] = await sequelize.query<{ exists: boolean }>(`SELECT to_regclass($1) IS NOT NULL AS exists`, {
    bind: [REPEATABLE_TABLE],
    type: QueryTypes.SELECT,
  });
  const applied = new Map<string, string>();
  if (table?.exists) {
    const rows = await sequelize.query<{ name: string; checksum: string }>(`SELECT name, checksum FROM ${REPEATABLE_TABLE}`, {
      type: QueryTypes.SELECT,
    });
    for (const row of rows) applied.set(row.name, row.checksum);
  }
  const existing = new Set(
    (
      await sequelize.query<{ proname: string }>(
        `SELECT DISTINCT proname FROM pg_proc WHERE pronamespace = 'public'::regnamespace AND proname = ANY($1)`,
        { bind: [files.map((f) => f.name)], type: QueryTypes.SELECT },
      )
    ).map((row) => row.proname),
  );
  return files.filter((file) => applied.get(file.name) !== file.checksum || !existing.has(file.name));
}

async function applyRepeatables(sequelize: Sequelize, files: RepeatableFile[]): Promise<void> {
  if (files.length === 0) return;
  await sequelize.transaction(async (transaction) => {
    await sequelize.query(
      `CREATE TABLE IF NOT EXISTS ${REPEATABLE_TABLE} (name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
      { transaction },
    );
    await sequelize.query(`SET LOCAL check_function_bodies = off`, { transaction });
    for (const file of files) {
      await sequelize.query(file.sql, { transaction });
      await sequelize.query(
        `INSERT INTO ${REPEATABLE_TABLE} (name, checksum) VALUES ($1, $2)
         ON CONFLICT (name) DO UPDATE SET checksum = EXCLUDED.checksum, applied_at = now()`,
        { bind: [file.name, file.checksum], transaction },
      );
    }
  });
}

/**
 * Applies pending migrations, then the ledger functions whose files changed. Several instances may start
 * at once: one open transaction holds a transaction-scoped advisory lock while the migrations run on other
 * connections, so the others wait and then find nothing left to do. (A transaction keeps its server
 * connection behind PgBouncer in transaction mode too, where a session-level lock would leak.)
 */
export async function migrateToLatest(sequelize: Sequelize, log?: (message: string) => void): Promise<string[]> {
  const migrator = createMigrator(sequelize, log);
  const lock = await sequelize.transaction();
  try {
    await sequelize.query(`SET LOCAL idle_in_transaction_session_timeout = 0`, { transaction: lock });
    await sequelize.query(`SELECT pg_advisory_xact_lock($1)`, { bind: [MIGRATION_LOCK_KEY], transaction: lock });
    const applied = (await migrator.up()).map((m) => m.name);
    const stale = await staleRepeatables(sequelize);
    await applyRepeatables(sequelize, stale);
    return [...applied, ...stale.map((file) => `ledger/${file.name}`)];
  } finally {
    await lock.commit().catch(() => undefined);
  }
}

/**
 * Applies the migrations up to and including `to` only, then every ledger function file (for benchmarks that
 * compare a schema before a migration with the latest one; the service itself always migrates to the latest).
 */
export async function migrateUpTo(sequelize: Sequelize, to: string): Promise<string[]> {
  const applied = (await createMigrator(sequelize).up({ to })).map((m) => m.name);
  await applyRepeatables(sequelize, await staleRepeatables(sequelize));
  return applied;
}

/** Migrations and ledger function files not yet applied (readiness fails while any are pending). */
export async function pendingMigrations(sequelize: Sequelize): Promise<string[]> {
  const pending = (await createMigrator(sequelize).pending()).map((m) => m.name);
  const stale = (await staleRepeatables(sequelize)).map((file) => `ledger/${file.name}`);
  return [...pending, ...stale];
}
