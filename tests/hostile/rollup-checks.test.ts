import { Client } from 'pg';
import request from 'supertest';
import { createTestContext, type TestContext } from '../support/context';
import { grantDirect } from '../support/db';
import { userWithRole } from '../support/tokens';

/**
 * Issue 12, item 9: the derived rollups carry non-negative CHECKs. They are folded by signed deltas; a refund,
 * a late finalize or a rerate subtracts, which an upsert could not do under a CHECK (PostgreSQL checks the
 * proposed insert row first). The folds now update in place and insert only missing rows.
 */
let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext({ SESSION_EXPIRY_POLICY: 'charge_estimate' });
});
afterAll(() => ctx.close());

const supervisor = userWithRole('supervisor');
const admin = userWithRole('admin');
const post = (auth: string, url: string, body: object) => request(ctx.app).post(url).set('Authorization', auth).send(body);

const CHECKS = [
  'usage_daily_non_negative',
  'usage_daily_system_non_negative',
  'usage_user_daily_non_negative',
  'usage_user_weekly_non_negative',
  'usage_totals_non_negative',
  'session_status_counts_non_negative',
];

/** Every derived rollup against the GROUP BY of its source (usage_daily; sessions for the status counts). */
async function driftedRollups(): Promise<unknown[]> {
  return ctx.db.query(`
    WITH d AS (SELECT *, acct_usage_shard(user_id) AS shard, day - (extract(isodow FROM day)::int - 1) AS week FROM usage_daily),
    expected_system AS (
      SELECT day, model_id, shard, sum(requests) AS requests, sum(credits) AS credits, sum(unpaid_credits) AS unpaid,
             sum(refunded_credits) AS refunded, sum(input_tokens) AS input, sum(output_tokens) AS output,
             sum(cached_input_tokens + cache_write_tokens + cache_write_1h_tokens + reasoning_tokens) AS other
        FROM d GROUP BY 1, 2, 3),
    actual_system AS (
      SELECT day, model_id, shard, requests, credits, unpaid_credits AS unpaid, refunded_credits AS refunded,
             input_tokens AS input, output_tokens AS output,
             cached_input_tokens + cache_write_tokens + cache_write_1h_tokens + reasoning_tokens AS other
        FROM usage_daily_system),
    expected_totals AS (SELECT shard, sum(requests) AS requests, sum(credits) AS credits, sum(unpaid_credits) AS unpaid, sum(refunded_credits) AS refunded FROM d GROUP BY 1),
    actual_totals AS (SELECT shard, requests, credits, unpaid_credits AS unpaid, refunded_credits AS refunded FROM usage_totals),
    expected_daily AS (SELECT day, user_id, sum(requests) AS requests, sum(credits) AS credits, sum(unpaid_credits) AS unpaid FROM d GROUP BY 1, 2),
    actual_daily AS (SELECT day, user_id, requests, credits, unpaid_credits AS unpaid FROM usage_user_daily),
    expected_weekly AS (SELECT week, user_id, sum(requests) AS requests, sum(credits) AS credits, sum(unpaid_credits) AS unpaid FROM d GROUP BY 1, 2),
    actual_weekly AS (SELECT week, user_id, requests, credits, unpaid_credits AS unpaid FROM usage_user_weekly),
    expected_status AS (SELECT status, acct_usage_shard(id) AS shard, count(*) AS sessions FROM streaming_sessions WHERE status <> 'active' GROUP BY 1, 2),
    actual_status AS (SELECT status, shard, sessions FROM session_status_counts)
    SELECT 'system' AS rollup, to_jsonb(x) AS row FROM ((SELECT * FROM expected_system EXCEPT SELECT * FROM actual_system)
                                                       UNION ALL (SELECT * FROM actual_system EXCEPT SELECT * FROM expected_system)) x
    UNION ALL SELECT 'totals', to_jsonb(x) FROM ((SELECT * FROM expected_totals EXCEPT SELECT * FROM actual_totals)
                                                UNION ALL (SELECT * FROM actual_totals EXCEPT SELECT * FROM expected_totals)) x
    UNION ALL SELECT 'daily', to_jsonb(x) FROM ((SELECT * FROM expected_daily EXCEPT SELECT * FROM actual_daily)
                                               UNION ALL (SELECT * FROM actual_daily EXCEPT SELECT * FROM expected_daily)) x
    UNION ALL SELECT 'weekly', to_jsonb(x) FROM ((SELECT * FROM expected_weekly EXCEPT SELECT * FROM actual_weekly)
                                                UNION ALL (SELECT * FROM actual_weekly EXCEPT SELECT * FROM expected_weekly)) x
    UNION ALL SELECT 'status', to_jsonb(x) FROM ((SELECT * FROM expected_status EXCEPT SELECT * FROM actual_status)
                                                UNION ALL (SELECT * FROM actual_status WHERE sessions <> 0 EXCEPT SELECT * FROM expected_status)) x`);
}

test('When the database is migrated, then every derived rollup carries its validated non-negative CHECK', async () => {
  const rows = await ctx.db.query<{ conname: string; convalidated: boolean }>(
    `SELECT conname, convalidated FROM pg_constraint WHERE contype = 'c' AND conname = ANY($1) ORDER BY conname`,
    [CHECKS],
  );
  expect(rows).toEqual([...CHECKS].sort().map((conname) => ({ conname, convalidated: true })));
});

test('When usage is refunded, a session is finalized late after expiry and usage is re-rated down, then the rollups shrink and stay equal to their source', async () => {
  const user = userWithRole('user');
  await grantDirect(ctx.db, user.id, 1000);
  // Enough usage that every later subtraction lands on rows that exist.
  const recorded = await post(user.auth, '/api/usage/record', { service: 'chat', operation: 'completion', modelId: 'gpt-4o', inputTokens: 200_000, outputTokens: 100_000 });
  expect(recorded.status).toBe(201);
  const refunded = await post(supervisor.auth, `/api/usage/records/${recorded.body.usageRecord.id}/refund`, { reason: 'bad answer' });
  expect(refunded.status).toBe(200);

  expect((await post(user.auth, '/api/streaming-sessions/initialize', { sessionId: 'late', modelId: 'gpt-4o', estimatedCredits: 20 })).status).toBe(201);
  await ctx.db.query(`UPDATE streaming_sessions SET expires_at = now() - interval '1 second' WHERE user_id = $1 RETURNING 1`, [user.id]);
  expect(await ctx.services.sessions.expireOverdue(10)).toBe(1);
  const [charged] = await ctx.db.query<{ credits: string }>(`SELECT credits::text FROM usage_user_daily WHERE user_id = $1`, [user.id]);
  // The expiry charged the whole estimate; the late finalize costs far less, so the rollups go down.
  const late = await post(user.auth, '/api/streaming-sessions/finalize', { sessionId: 'late', actualInputTokens: 1000, actualOutputTokens: 100 });
  expect(late.status).toBe(200);
  const [after] = await ctx.db.query<{ credits: string }>(`SELECT credits::text FROM usage_user_daily WHERE user_id = $1`, [user.id]);
  expect(Number(after.credits)).toBeLessThan(Number(charged.credits));

  const model = `chk-${Date.now()}`;
  const setPrice = (input: number, output: number) =>
    request(ctx.app).put(`/api/models/${model}`).set('Authorization', admin.auth).send({ inputPricePer1M: input, outputPricePer1M: output, cachedInputPricePer1M: input });
  expect((await setPrice(4, 8)).status).toBeLessThan(300);
  expect((await post(supervisor.auth, '/api/usage/record', { userId: user.id, service: 'chat', operation: 'completion', modelId: model, inputTokens: 1_000_000, outputTokens: 1_000_000 })).status).toBe(201);
  expect((await setPrice(1, 1)).status).toBeLessThan(300);
  const rerate = await post(admin.auth, '/api/admin/rerate', { modelId: model, fromPriceVersion: 1, toPriceVersion: 2, from: '2020-01-01T00:00:00Z', to: '2100-01-01T00:00:00Z' });
  expect(rerate.body).toMatchObject({ records: 1, creditsRefunded: 10 });

  expect(await driftedRollups()).toEqual([]);
  const reconcile = await request(ctx.app).get('/api/admin/reconcile').set('Authorization', admin.auth);
  expect(reconcile.body).toMatchObject({ ok: true, discrepancies: [] });
});

test.each([
  ['a system rollup set below zero', `UPDATE usage_daily_system SET credits = -1 WHERE true RETURNING 1`],
  ['a shard total set below zero', `UPDATE usage_totals SET unpaid_credits = -1 WHERE true RETURNING 1`],
  ['a user day set below zero', `UPDATE usage_user_daily SET requests = -1 WHERE true RETURNING 1`],
  ['a user week set below zero', `UPDATE usage_user_weekly SET credits = -0.000001 WHERE true RETURNING 1`],
  ['a status count set below zero', `INSERT INTO session_status_counts (status, shard, sessions) VALUES ('expired', 0, -1)
                                     ON CONFLICT (status, shard) DO UPDATE SET sessions = -1 RETURNING 1`],
  ['a refund recorded below zero', `UPDATE usage_daily SET refunded_credits = -1 WHERE true RETURNING 1`],
  ['a fold subtracting from a row that does not exist', `SELECT acct_usage_fold('nobody', DATE '2001-01-01', 'none', -1, -5, 0, 0, 0, 0)`],
  ['a fold subtracting more than a rollup holds', `SELECT acct_usage_fold(user_id, day, model_id, 0, -1000000000000000, 0, 0, 0, 0) FROM usage_daily LIMIT 1`],
  ['a refunded fold below zero', `SELECT acct_usage_fold_refunded('nobody', DATE '2001-01-01', 'none', -1)`],
])('When a statement makes %s, then PostgreSQL refuses it (check_violation) and the rollups stay whole', async (_name, sql) => {
  await expect(ctx.db.query(sql)).rejects.toMatchObject({
    original: expect.objectContaining({ code: '23514' }),
  });
  expect(await driftedRollups()).toEqual([]);
});

test('When many transactions fold into the same missing rollup rows at once, then none fails and the sums are exact', async () => {
  const clients = await Promise.all(
    Array.from({ length: 12 }, async () => {
      const client = new Client({ connectionString: ctx.databaseUrl });
      await client.connect();
      return client;
    }),
  );
  try {
    const day = '2003-03-03';
    await Promise.all(
      clients.map(async (client, i) => {
        for (let k = 0; k < 5; k++) {
          await client.query(`SELECT acct_usage_fold('racer', $1::date, 'race-model', 1, $2::numeric, 0, 10, 20, 0)`, [day, 1_000_000 + i]);
        }
      }),
    );
    const [system] = await ctx.db.query<{ requests: string; credits: string; input: string }>(
      `SELECT requests::text, credits::text, input_tokens::text AS input FROM usage_daily_system WHERE day = $1 AND model_id = 'race-model'`,
      [day],
    );
    const expectedCredits = 5 * Array.from({ length: 12 }, (_, i) => 1_000_000 + i).reduce((a, b) => a + b, 0);
    expect(system).toEqual({ requests: '60', credits: String(expectedCredits), input: '600' });
    const [user] = await ctx.db.query<{ requests: string }>(`SELECT requests::text FROM usage_user_daily WHERE day = $1 AND user_id = 'racer'`, [day]);
    expect(user.requests).toBe('60');
  } finally {
    await Promise.all(clients.map((client) => client.end()));
  }
});
