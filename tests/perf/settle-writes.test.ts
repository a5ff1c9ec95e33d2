import { Client } from 'pg';
import request from 'supertest';
import { createTestContext, type TestContext } from '../support/context';
import { grantDirect, micro } from '../support/db';
import { bearer, tokenFor } from '../support/tokens';
import { addTestModel, ledgerProblems, TEST_MODEL } from '../sessions/support';

// Issue 19: a settle writes its session row once. It takes the usage record's id first and ends the session
// naming it, so the record's one-per-session trigger finds its claim made instead of updating the row again;
// a leg's capture and release rows go in one INSERT. Counted in the settle's own transaction
// (pg_stat_xact_user_tables, on a connection of its own: PostgreSQL 15 also shows a backend's earlier
// transactions there until it flushes its statistics), so the figures are exact, not timed.
let ctx: TestContext;
let owner: Client;
beforeAll(async () => {
  ctx = await createTestContext();
  await addTestModel(ctx.db);
  owner = new Client({ connectionString: ctx.ownerUrl });
  await owner.connect();
});
afterEach(async () => {
  expect(await ledgerProblems(ctx.db)).toEqual([]);
});
afterAll(async () => {
  await owner.end();
  await ctx.close();
});

async function openSession(user: string, sessionId: string): Promise<{ model_id: string; price_version: number }> {
  const res = await request(ctx.app)
    .post('/api/streaming-sessions/initialize')
    .set('Authorization', bearer(tokenFor({ sub: user })))
    .send({ sessionId, modelId: TEST_MODEL, estimatedCredits: 3 });
  expect(res.status).toBe(201);
  const { rows } = await owner.query(`SELECT model_id, price_version FROM streaming_sessions WHERE user_id = $1 AND id = $2`, [user, sessionId]);
  return rows[0];
}

/** Settles in a transaction of its own and returns what it wrote to the session and ledger tables. */
async function settleCounted(user: string, sessionId: string, cost: bigint) {
  const session = await openSession(user, sessionId);
  const fresh = new Client({ connectionString: ctx.ownerUrl });
  await fresh.connect();
  await fresh.query('BEGIN');
  try {
    const { rows } = await fresh.query(
      `SELECT outcome FROM acct_session_settle($1, $2, false, 'finalize', $3, $4, $5, 100, 100, NULL, NULL, NULL, NULL, NULL, $2)`,
      [sessionId, user, session.model_id, session.price_version, cost.toString()],
    );
    const counts = await fresh.query<{ relname: string; ins: number; upd: number }>(
      `SELECT relname, n_tup_ins::int AS ins, n_tup_upd::int AS upd FROM pg_stat_xact_user_tables
        WHERE relname = 'streaming_sessions' OR relname LIKE 'credit\\_transactions\\_%' OR relname LIKE 'usage\\_records\\_%'`,
    );
    await fresh.query('COMMIT');
    const sum = (prefix: string, key: 'ins' | 'upd') => counts.rows.filter((r) => r.relname.startsWith(prefix)).reduce((n, r) => n + r[key], 0);
    return {
      outcome: rows[0].outcome as string,
      sessionUpdates: sum('streaming_sessions', 'upd'),
      ledgerRows: sum('credit_transactions_', 'ins'),
      usageRecords: sum('usage_records_', 'ins'),
    };
  } finally {
    await fresh.query('ROLLBACK').catch(() => undefined); // after COMMIT only a warning
    await fresh.end();
  }
}

test('When a session is finalized below its hold, then its row is written once, and the capture and release rows and one record are written', async () => {
  await grantDirect(ctx.db, 'sw-ann', 10);
  expect(await settleCounted('sw-ann', 'sw-ann-1', micro(1))).toEqual({ outcome: 'settled', sessionUpdates: 1, ledgerRows: 2, usageRecords: 1 });
  const { rows } = await owner.query(
    `SELECT s.usage_record_id::text AS claimed, r.id::text AS record, t.types
       FROM streaming_sessions s JOIN usage_records r ON r.user_id = s.user_id AND r.session_id = s.id
       CROSS JOIN LATERAL (SELECT array_agg(type ORDER BY id) AS types FROM credit_transactions WHERE user_id = s.user_id AND session_id = s.id) t
      WHERE s.user_id = 'sw-ann' AND s.id = 'sw-ann-1'`,
  );
  expect(rows).toHaveLength(1);
  expect(rows[0].claimed).toBe(rows[0].record);
  expect(rows[0].types).toEqual(['hold', 'capture', 'release']);
});

test('When a session is finalized at exactly its hold, then only the capture row is written (no zero release)', async () => {
  await grantDirect(ctx.db, 'sw-bob', 10);
  expect(await settleCounted('sw-bob', 'sw-bob-1', micro(3))).toEqual({ outcome: 'settled', sessionUpdates: 1, ledgerRows: 1, usageRecords: 1 });
});

// In a transaction rolled back at the end: a record written straight to an active session is a state the
// service never makes, and reconcile (after each test) would report it.
test('When a session already names another usage record, then the settle is refused as a second record and changes nothing', async () => {
  await grantDirect(ctx.db, 'sw-cid', 10);
  const session = await openSession('sw-cid', 'sw-cid-1');
  await owner.query('BEGIN');
  const { rows: first } = await owner.query(
    `SELECT acct_record_usage('sw-cid', 'sw-cid-1', 'chat', 'completion', NULL, NULL, 1, 1, 0, 0, 0, 0, NULL, 'test')::text AS id`,
  );
  await owner.query('SAVEPOINT settle');
  await expect(
    owner.query(`SELECT * FROM acct_session_settle('sw-cid-1', 'sw-cid', false, 'finalize', $1, $2, 1000000, 100, 100, NULL, NULL, NULL, NULL, NULL, 'sw-cid')`, [
      session.model_id,
      session.price_version,
    ]),
  ).rejects.toMatchObject({ code: '23505', constraint: 'usage_records_session_key' });
  await owner.query('ROLLBACK TO SAVEPOINT settle');
  const { rows } = await owner.query(
    `SELECT status, usage_record_id::text AS claimed, (SELECT count(*)::int FROM usage_records WHERE session_id = 'sw-cid-1') AS records
       FROM streaming_sessions WHERE user_id = 'sw-cid' AND id = 'sw-cid-1'`,
  );
  await owner.query('ROLLBACK');
  expect(rows).toEqual([{ status: 'active', claimed: first[0].id, records: 1 }]);
});
