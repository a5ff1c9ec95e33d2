import { createDatabase, checkSessionSettings, type Database } from '../../src/db/database';
import { createTestContext, type TestContext } from '../support/context';

/**
 * DATABASE_PREPARED_STATEMENTS=false is for PgBouncer in transaction mode (CI runs the whole suite through
 * one): no named statements, no session settings at connect, and a boot check that names what is missing.
 */
describe('pooler mode (DATABASE_PREPARED_STATEMENTS=false)', () => {
  let ctx: TestContext;
  const opened: Database[] = [];
  /** The test database reached directly, never through a pooler, so each check sees one server connection. */
  beforeAll(async () => {
    ctx = await createTestContext();
  });
  afterAll(async () => {
    await Promise.all(opened.map((db) => db.close()));
    await ctx.close();
  });

  const connect = (preparedStatements: boolean) => {
    const db = createDatabase({ url: ctx.ownerUrl, poolMax: 1, statementTimeoutMs: 5_000, lockTimeoutMs: 1_000, acquireTimeoutMs: 5_000, preparedStatements });
    opened.push(db);
    return db;
  };
  const preparedNames = async (db: Database) =>
    (await db.query<{ name: string }>(`SELECT name FROM pg_prepared_statements ORDER BY name`)).map((r) => r.name);

  it('When prepared statements are on, then the hot path leaves a named statement on its connection', async () => {
    const db = connect(true);
    const [row] = await db.prepared<{ n: number }>('acct_probe', 'SELECT $1::int AS n', [7]);
    expect(row.n).toBe(7);
    expect(await preparedNames(db)).toEqual(['acct_probe']);
  });

  it('When prepared statements are off, then the same call answers the same and leaves no named statement', async () => {
    const db = connect(false);
    const [row] = await db.prepared<{ n: number }>('acct_probe', 'SELECT $1::int AS n', [7]);
    expect(row.n).toBe(7);
    expect(await preparedNames(db)).toEqual([]);
  });

  it('When no session settings are sent and the server has no lock_timeout, then the boot check names it', async () => {
    expect(await checkSessionSettings(connect(false))).toEqual(['lock_timeout is 0 (no limit), expected a few seconds']);
    expect(await checkSessionSettings(connect(true))).toEqual([]);
  });
});
