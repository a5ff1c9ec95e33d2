import { Client } from 'pg';
import { createTestContext, type TestContext } from '../support/context';
import { grantDirect } from '../support/db';

/** Issue 12, item 9: the database refuses rows that would corrupt the books, whatever code writes them. */
let ctx: TestContext;
let lot: string;
beforeAll(async () => {
  ctx = await createTestContext();
  lot = await grantDirect(ctx.db, 'owner', 5);
  await grantDirect(ctx.db, 'stranger', 5);
  await ctx.db.query(
    `INSERT INTO streaming_sessions (id, user_id, model_id, price_version, status, estimated_credits, allocated_credits, request_hash, expires_at)
     VALUES ('c-1', 'owner', 'gpt-4o', 1, 'active', 1000000, 1000000, 'h', now() + interval '1 hour') RETURNING 1`,
  );
});
afterAll(() => ctx.close());

const refused = (sql: string, bind: unknown[] = []) => expect(ctx.db.query(sql, bind)).rejects.toThrow();

test.each([
  ['a ledger row on a lot of another user', `INSERT INTO credit_transactions (user_id, type, amount, allocation_id) VALUES ('stranger', 'charge', 1, $1)`],
  ['a hold leg on a lot of another user', `INSERT INTO session_holds (session_id, allocation_id, user_id, held_credits) VALUES ('c-1', $1, 'stranger', 1)`],
  ['a lot-moving ledger row without its lot', `INSERT INTO credit_transactions (user_id, type, amount) VALUES ('owner', 'hold', 1) RETURNING $1::text`],
  ['a session refunding more than it held', `UPDATE streaming_sessions SET refunded_credits = 2000000 WHERE id = 'c-1' AND $1::text IS NOT NULL`],
  ['a session with more unpaid than used', `UPDATE streaming_sessions SET used_credits = 1, unpaid_credits = 2 WHERE id = 'c-1' AND $1::text IS NOT NULL`],
  ['an ended session without its cost', `UPDATE streaming_sessions SET ended_at = now() WHERE id = 'c-1' AND $1::text IS NOT NULL`],
  ['a negative rollup', `INSERT INTO usage_daily (user_id, day, service, operation, credits) VALUES ('owner', current_date, 's', 'o', -1) RETURNING $1::text`],
  ['TRUNCATE of the ledger', `TRUNCATE credit_transactions`],
  ['a low-balance threshold that is not positive', `UPDATE event_settings SET low_balance_thresholds = '{5000000, 0}' WHERE id AND $1::text IS NOT NULL`],
  ['a low-balance threshold that is missing', `UPDATE event_settings SET low_balance_thresholds = '{5000000, NULL}' WHERE id AND $1::text IS NOT NULL`],
])('When a statement writes %s, then PostgreSQL refuses it', async (_name, sql) => {
  await refused(sql, sql.includes('$1') ? [lot] : []);
});

// Issue 19 dropped the single-column keys (allocation_id) -> credit_allocations (id): the composite
// (allocation_id, user_id) keys must refuse a missing lot, and deleting a lot still named, by themselves.
// As the owner: the suite may run as the least-privilege role, which may not delete lots at all.
test.each([
  ['a ledger row naming a lot that does not exist', `INSERT INTO credit_transactions (user_id, type, amount, allocation_id) VALUES ('owner', 'charge', 1, $1::bigint + 1000000)`, 'credit_transactions_lot_owner_fkey'],
  ['a hold leg naming a lot that does not exist', `INSERT INTO session_holds (session_id, allocation_id, user_id, held_credits) VALUES ('c-1', $1::bigint + 1000000, 'owner', 1)`, 'session_holds_lot_owner_fkey'],
  ['deleting a lot its ledger rows name', `DELETE FROM credit_allocations WHERE id = $1`, 'credit_transactions_lot_owner_fkey'],
])('When a statement writes %s, then the composite lot key refuses it', async (_name, sql, constraint) => {
  const owner = new Client({ connectionString: ctx.ownerUrl });
  await owner.connect();
  try {
    await expect(owner.query(sql, [lot])).rejects.toMatchObject({ code: '23503', constraint });
  } finally {
    await owner.end();
  }
});
