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

/**
 * Runs one statement as the database owner, in a transaction rolled back afterwards; returns its error, or
 * null when it passed. As the owner: the suite may run as the least-privilege role, which may not write
 * everything these cases write (deleting lots, usage rows straight into the rollups).
 */
async function asOwnerRolledBack(sql: string, bind: unknown[] = []): Promise<unknown> {
  const owner = new Client({ connectionString: ctx.ownerUrl });
  await owner.connect();
  try {
    await owner.query('BEGIN');
    return await owner.query(sql, bind).then(
      () => null,
      (error: unknown) => error,
    );
  } finally {
    await owner.query('ROLLBACK').catch(() => undefined);
    await owner.end();
  }
}

// Issue 19 dropped the single-column keys (allocation_id) -> credit_allocations (id): the composite
// (allocation_id, user_id) keys must refuse a missing lot, and deleting a lot still named, by themselves.
test.each([
  ['a ledger row naming a lot that does not exist', `INSERT INTO credit_transactions (user_id, type, amount, allocation_id) VALUES ('owner', 'charge', 1, $1::bigint + 1000000)`, 'credit_transactions_lot_owner_fkey'],
  ['a hold leg naming a lot that does not exist', `INSERT INTO session_holds (session_id, allocation_id, user_id, held_credits) VALUES ('c-1', $1::bigint + 1000000, 'owner', 1)`, 'session_holds_lot_owner_fkey'],
  ['deleting a lot its ledger rows name', `DELETE FROM credit_allocations WHERE id = $1`, 'credit_transactions_lot_owner_fkey'],
])('When a statement writes %s, then the composite lot key refuses it', async (_name, sql, constraint) => {
  expect(await asOwnerRolledBack(sql, [lot])).toMatchObject({ code: '23503', constraint });
});

// Issue 19 folded the per-column `>= 0` CHECKs into one `least(...) >= 0` per table (migration 20261130008200):
// every column is still refused below zero, by the table's one constraint, and a NULL column still passes.
const SESSION_AMOUNTS = [
  'estimated_input_tokens', 'estimated_output_tokens', 'estimated_credits', 'estimated_input_credits', 'allocated_credits',
  'used_credits', 'refunded_credits', 'unpaid_credits', 'actual_input_tokens', 'actual_output_tokens', 'cached_input_tokens',
  'cache_write_tokens', 'cache_write_1h_tokens', 'reasoning_tokens',
];
const RECORD_TOKENS = ['input_tokens', 'output_tokens', 'cached_input_tokens', 'cache_write_tokens', 'cache_write_1h_tokens', 'reasoning_tokens'];
const ROLLUP_AMOUNTS = ['requests', 'credits', 'unpaid_credits'];
const DAILY_AMOUNTS = [...ROLLUP_AMOUNTS, 'refunded_credits', ...RECORD_TOKENS];
// Each rollup: its key columns and values for a new row, and the amounts its CHECK covers.
const ROLLUPS: Record<string, { keyColumns: string; keyValues: string; amounts: string[] }> = {
  usage_daily: { keyColumns: 'user_id, day, service, operation', keyValues: `'owner', current_date, 's', 'o'`, amounts: DAILY_AMOUNTS },
  usage_daily_system: { keyColumns: 'day, model_id, shard', keyValues: `current_date, 'm', 0`, amounts: DAILY_AMOUNTS },
  usage_user_daily: { keyColumns: 'day, user_id', keyValues: `current_date, 'owner'`, amounts: ROLLUP_AMOUNTS },
  usage_user_weekly: { keyColumns: 'week, user_id', keyValues: `date_trunc('week', now())::date, 'owner'`, amounts: ROLLUP_AMOUNTS },
  usage_totals: { keyColumns: 'shard', keyValues: '0', amounts: [...ROLLUP_AMOUNTS, 'refunded_credits'] },
};
// A usage record negative in one column only (credits = charged + unpaid + refunded still holds).
const recordWith = (column: string) => {
  const amounts: Record<string, number> = { credits: 0, charged_credits: 0, unpaid_credits: 0, refunded_credits: 0, [column]: -1 };
  if (column === 'credits') amounts.charged_credits = -1;
  if (column === 'charged_credits') amounts.credits = -1;
  if (column === 'unpaid_credits' || column === 'refunded_credits') amounts.charged_credits = 1;
  const columns = Object.keys(amounts);
  return `INSERT INTO usage_records (user_id, service, operation, ${columns.join(', ')}) VALUES ('owner', 's', 'o', ${columns.map((c) => amounts[c]).join(', ')})`;
};

test.each([
  ...SESSION_AMOUNTS.map((c) => ['streaming_sessions', c, `UPDATE streaming_sessions SET ${c} = -1 WHERE id = 'c-1'`, 'streaming_sessions_non_negative']),
  ...[...RECORD_TOKENS, 'credits', 'charged_credits', 'unpaid_credits', 'refunded_credits'].map((c) => ['usage_records', c, recordWith(c), 'usage_records_non_negative']),
  ...Object.entries(ROLLUPS).flatMap(([table, { keyColumns, keyValues, amounts }]) =>
    amounts.map((c) => [table, c, `INSERT INTO ${table} (${keyColumns}, ${c}) VALUES (${keyValues}, -1)`, `${table}_non_negative`]),
  ),
])('When %s.%s is written below zero, then its one non-negative CHECK refuses it', async (_table, _column, sql, constraint) => {
  expect(await asOwnerRolledBack(sql)).toMatchObject({ code: '23514', constraint });
});

test('When the non-negative columns are NULL or zero, then the compact CHECKs pass them, and no per-column CHECK is left', async () => {
  const nulls = SESSION_AMOUNTS.filter((c) => !['estimated_credits', 'allocated_credits', 'unpaid_credits'].includes(c)).map((c) => `${c} = NULL`);
  expect(await asOwnerRolledBack(`UPDATE streaming_sessions SET ${nulls.join(', ')} WHERE id = 'c-1'`)).toBeNull();
  expect(await asOwnerRolledBack(`UPDATE streaming_sessions SET ${SESSION_AMOUNTS.map((c) => `${c} = 0`).join(', ')} WHERE id = 'c-1'`)).toBeNull();
  for (const [table, { keyColumns, keyValues }] of Object.entries(ROLLUPS)) {
    expect(await asOwnerRolledBack(`INSERT INTO ${table} (${keyColumns}) VALUES (${keyValues})`)).toBeNull();
  }
  const left = await ctx.db.query<{ conname: string }>(
    `SELECT conname FROM pg_constraint
      WHERE contype = 'c' AND conrelid IN ('streaming_sessions'::regclass, 'usage_records'::regclass, 'usage_daily'::regclass)
        AND (conname LIKE '%\\_tokens\\_check' OR conname LIKE '%\\_credits\\_check' OR conname = 'usage_daily_non_negative_kinds')`,
  );
  expect(left).toEqual([]);
});
