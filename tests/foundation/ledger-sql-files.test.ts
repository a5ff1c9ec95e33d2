import { createTestContext, type TestContext } from '../support/context';
import { ledgerFunctionFiles, migrateToLatest, pendingMigrations } from '../../src/db/migrator';

/**
 * The ledger's functions are repeatable migrations: each file in src/ledger/sql is the current text of one
 * function, applied when its checksum changes or the function is missing.
 */
describe('ledger functions as repeatable migrations', () => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext();
  });
  afterAll(() => ctx.close());

  it('When the database is migrated, then every ledger file is applied and its function exists with that checksum', async () => {
    const files = ledgerFunctionFiles();
    expect(files.length).toBeGreaterThan(10);
    const rows = await ctx.db.query<{ name: string; checksum: string; present: boolean }>(
      `SELECT r.name, r.checksum, EXISTS (SELECT 1 FROM pg_proc p WHERE p.proname = r.name) AS present FROM repeatable_migrations r`,
    );
    const applied = new Map(rows.map((r) => [r.name, r]));
    for (const file of files) {
      expect(applied.get(file.name)).toMatchObject({ checksum: file.checksum, present: true });
    }
    expect(await pendingMigrations(ctx.db.sequelize)).toEqual([]);
  });

  it('When each file names its own function, then the file name and the CREATE statement agree', () => {
    for (const file of ledgerFunctionFiles()) {
      expect(file.sql).toMatch(new RegExp(`CREATE OR REPLACE FUNCTION ${file.name}\\s*\\(`));
    }
  });

  it('When a function was dropped or its recorded checksum differs, then it is pending and the migrator applies it again, once', async () => {
    await ctx.db.query(`DROP FUNCTION acct_available(text)`);
    await ctx.db.query(`UPDATE repeatable_migrations SET checksum = 'old' WHERE name = 'acct_signed_amount'`);
    expect((await pendingMigrations(ctx.db.sequelize)).sort()).toEqual(['ledger/acct_available', 'ledger/acct_signed_amount']);

    const applied = await migrateToLatest(ctx.db.sequelize);
    expect(applied.sort()).toEqual(['ledger/acct_available', 'ledger/acct_signed_amount']);
    const [row] = await ctx.db.query<{ available: string }>(`SELECT acct_available('nobody') AS available`);
    expect(row.available).toBe('0');
    expect(await migrateToLatest(ctx.db.sequelize)).toEqual([]);
  });
});
