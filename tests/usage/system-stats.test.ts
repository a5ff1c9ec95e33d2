import request from 'supertest';
import { createTestContext, type TestContext } from '../support/context';
import { grantDirect } from '../support/db';
import { userWithRole } from '../support/tokens';
import { NO_MISMATCHES, recordAt, rollupMismatches } from './helpers';

// This file owns its database, so system-wide figures are exact.
let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext();
});
afterAll(() => ctx.close());

const admin = userWithRole('admin');
const systemStats = (query: Record<string, string> = {}) =>
  request(ctx.app).get('/api/usage/system-stats').query(query).set('Authorization', admin.auth);

/** Arranges a streaming session row directly (the sessions service writes these in production). */
async function session(id: string, userId: string, status: string) {
  await ctx.db.query(`INSERT INTO user_accounts (id) VALUES ($1) ON CONFLICT DO NOTHING RETURNING 1`, [userId]);
  await ctx.db.query(
    `INSERT INTO streaming_sessions (id, user_id, model_id, price_version, status, estimated_credits, allocated_credits,
                                     request_hash, expires_at)
     VALUES ($1, $2, 'gpt-4o', 1, $3, 0, 0, 'h', now() + interval '15 minutes') RETURNING 1`,
    [id, userId, status],
  );
}
const setStatus = (id: string, status: string) =>
  ctx.db.query(`UPDATE streaming_sessions SET status = $2 WHERE id = $1 RETURNING 1`, [id, status]);

describe('GET /api/usage/system-stats', () => {
  test('When credits were allocated, charged, held, left unpaid and expired, then the credits block is the system as of now', async () => {
    const ann = 'sys-ann';
    const bo = 'sys-bo';
    await grantDirect(ctx.db, ann, 10);
    await grantDirect(ctx.db, bo, 4);
    // A lot past its expiry, swept the way the sweeper does it: an 'expire' row and remaining to 0.
    const stale = await grantDirect(ctx.db, bo, 6, new Date(Date.now() + 60_000));
    await ctx.db.query(`UPDATE credit_allocations SET remaining_credits = 0, expires_at = now() WHERE id = $1 RETURNING 1`, [stale]);
    await ctx.db.query(
      `INSERT INTO credit_transactions (user_id, type, amount, allocation_id) VALUES ($1, 'expire', 6000000, $2) RETURNING 1`,
      [bo, stale],
    );
    // 3 credits used and paid by ann; bo uses 5 with 4 available: 4 paid, 1 unpaid.
    await request(ctx.app).post('/api/usage/record').set('Authorization', admin.auth).send({ service: 'chat', operation: 'c', credits: 3, userId: ann });
    await request(ctx.app).post('/api/usage/record').set('Authorization', admin.auth).send({ service: 'chat', operation: 'c', credits: 5, userId: bo });
    // An active session holding 2 of ann's credits, 0.5 of which were already released: 1.5 reserved.
    await session('sys-s1', ann, 'active');
    const [lot] = await ctx.db.query<{ id: string }>(`SELECT id::text FROM credit_allocations WHERE user_id = $1`, [ann]);
    await ctx.db.query(`UPDATE credit_allocations SET remaining_credits = remaining_credits - 2000000 WHERE id = $1 RETURNING 1`, [lot.id]);
    await ctx.db.query(
      `INSERT INTO session_holds (session_id, allocation_id, user_id, held_credits, released_credits) VALUES ('sys-s1', $1, $2, 2000000, 500000) RETURNING 1`,
      [lot.id, ann],
    );

    const res = await systemStats();

    expect(res.status).toBe(200);
    expect(res.body.credits).toEqual({
      allocated: 20,
      available: 5, // ann 10 - 3 - 2 held; bo 4 - 4; the expired lot is empty
      reserved: 1.5,
      consumed: 7,
      expired: 6,
      unpaid: 1,
      refunded: 0,
    });
    expect(res.body.totals).toMatchObject({ requests: 2, credits: 8, unpaidCredits: 1, activeUsers: 2 });
    expect(res.body.topUsers).toEqual([
      { userId: bo, requests: 1, credits: 5, unpaidCredits: 1 },
      { userId: ann, requests: 1, credits: 3, unpaidCredits: 0 },
    ]);
  });

  test('When sessions change status (including late changes and deletes), then the counts equal a GROUP BY over the sessions', async () => {
    const user = 'sys-sessions';
    for (let i = 0; i < 12; i++) await session(`cnt-${i}`, user, 'active');
    await session('cnt-born-aborted', user, 'aborted');
    for (let i = 0; i < 5; i++) await setStatus(`cnt-${i}`, 'completed');
    for (let i = 5; i < 8; i++) await setStatus(`cnt-${i}`, 'expired');
    await setStatus('cnt-8', 'aborted');
    // A late finalize of an expired session, and a row touched without a status change.
    await setStatus('cnt-5', 'completed');
    await ctx.db.query(`UPDATE streaming_sessions SET updated_at = now() WHERE id = 'cnt-6' RETURNING 1`);
    await ctx.db.query(`DELETE FROM streaming_sessions WHERE id = 'cnt-7' RETURNING 1`);

    const res = await systemStats();

    const truth = await ctx.db.query<{ status: string; n: number }>(`SELECT status, count(*)::int AS n FROM streaming_sessions GROUP BY status`);
    const expected = { active: 0, completed: 0, aborted: 0, expired: 0, ...Object.fromEntries(truth.map((t) => [t.status, t.n])) };
    expect(res.body.sessions).toEqual(expected);
    expect(res.body.sessions).toMatchObject({ completed: 6, expired: 1, aborted: 2 });
  });

  test('When usage_daily is adjusted later (as a late session finalize does), then the derived rollups follow the delta', async () => {
    const cy = userWithRole('user', 'sys-cy');
    await recordAt(ctx.db, '2026-04-01T08:00:00Z', { userId: cy.id, modelId: 'gpt-4o', credits: 2_000_000n, inputTokens: 10 });
    const before = await systemStats({ from: '2026-04-01', to: '2026-04-01' });

    // What the sessions service does when a late finalize changes a record: adjust the record and its day.
    await ctx.db.transaction(async (tx) => {
      await ctx.db.query(
        `UPDATE usage_records SET credits = credits + 3000000, unpaid_credits = unpaid_credits + 3000000, input_tokens = input_tokens + 5
          WHERE user_id = $1 RETURNING 1`,
        [cy.id],
        tx,
      );
      await ctx.db.query(
        `UPDATE usage_daily SET credits = credits + 3000000, unpaid_credits = unpaid_credits + 3000000, input_tokens = input_tokens + 5
          WHERE user_id = $1 AND day = '2026-04-01' RETURNING 1`,
        [cy.id],
        tx,
      );
    });
    const after = await systemStats({ from: '2026-04-01', to: '2026-04-01' });
    const userView = await request(ctx.app).get('/api/usage/stats').query({ from: '2026-04-01', to: '2026-04-01' }).set('Authorization', cy.auth);

    expect(before.body.totals).toMatchObject({ requests: 1, credits: 2, inputTokens: 10 });
    // cy has no credits: the first 2 were unpaid already.
    expect(after.body.totals).toMatchObject({ requests: 1, credits: 5, unpaidCredits: 5, inputTokens: 15 });
    expect(after.body.byModel).toEqual([expect.objectContaining({ modelId: 'gpt-4o', credits: 5 })]);
    expect(after.body.topUsers).toEqual([{ userId: cy.id, requests: 1, credits: 5, unpaidCredits: 5 }]);
    expect(after.body.credits.unpaid - before.body.credits.unpaid).toBe(3);
    expect(userView.body.totals).toMatchObject({ requests: 1, credits: 5, inputTokens: 15 });
  });

  test('When every rollup is rebuilt from the raw records, then it equals what the triggers maintained', async () => {
    expect(await rollupMismatches(ctx.db)).toEqual(NO_MISMATCHES);
  });
});
