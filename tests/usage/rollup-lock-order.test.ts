import { Client } from 'pg';
import { createTestContext, type TestContext } from '../support/context';

/**
 * Issue 19: acct_usage_fold folds a new record (no figure goes down) into the four derived rollups with one
 * upsert statement, and anything that subtracts with update-or-insert loops. Both must take the rows' locks
 * in one order — usage_daily_system, usage_user_daily, usage_user_weekly, usage_totals — or two folds could
 * wait on each other's rows. The upsert's order depends on how PostgreSQL runs the WITH statements; this
 * pins it. A trigger on each rollup notes the order its rows are written (and so locked) in. The triggers are
 * DDL, so this test works on its database as the owner (the suite may run as the least-privilege role).
 */
let ctx: TestContext;
let owner: Client;
beforeAll(async () => {
  ctx = await createTestContext();
  owner = new Client({ connectionString: ctx.ownerUrl });
  await owner.connect();
  await owner.query(`CREATE TABLE fold_order (seq bigserial PRIMARY KEY, tbl text NOT NULL)`);
  await owner.query(
    `CREATE FUNCTION note_fold_order() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN INSERT INTO fold_order (tbl) VALUES (TG_TABLE_NAME); RETURN NEW; END $$`,
  );
  for (const table of ['usage_daily_system', 'usage_user_daily', 'usage_user_weekly', 'usage_totals']) {
    await owner.query(`CREATE TRIGGER note_fold_order BEFORE INSERT OR UPDATE ON ${table} FOR EACH ROW EXECUTE FUNCTION note_fold_order()`);
  }
});
afterAll(async () => {
  await owner.end();
  await ctx.close();
});

const ORDER = ['usage_daily_system', 'usage_user_daily', 'usage_user_weekly', 'usage_totals'];

async function foldOrder(sign: 1 | -1): Promise<string[]> {
  await owner.query(`TRUNCATE fold_order`);
  await owner.query(`SELECT acct_usage_fold('order-user', current_date, 'gpt-4o', $1::bigint, $2::numeric, 0, $3::numeric, $3::numeric, 0)`, [
    sign,
    sign * 5,
    sign * 10,
  ]);
  const { rows } = await owner.query<{ tbl: string }>(`SELECT tbl FROM fold_order ORDER BY seq`);
  // An upsert that finds its row fires the insert trigger for the proposed row and then the update trigger.
  return rows.map((r) => r.tbl).filter((t, i, all) => i === 0 || all[i - 1] !== t);
}

it('When a new record is folded (one upsert) and then taken back (the loops), then both lock the rollups in the same order', async () => {
  expect(await foldOrder(1)).toEqual(ORDER); // no rows yet: every upsert inserts
  expect(await foldOrder(1)).toEqual(ORDER); // rows exist: every upsert updates
  expect(await foldOrder(-1)).toEqual(ORDER);
  const [userDaily] = await ctx.db.query<{ requests: string }>(
    `SELECT requests::text FROM usage_user_daily WHERE user_id = 'order-user' AND day = current_date`,
  );
  expect(userDaily.requests).toBe('1');
});
