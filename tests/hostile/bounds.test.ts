import request from 'supertest';
import { createTestContext, type TestContext } from '../support/context';
import { availableOf, count, grantDirect, micro } from '../support/db';
import { bearer, tokenFor, userWithRole } from '../support/tokens';
import { ledgerProblems, makeOverdue, reconcile } from '../sessions/support';

/**
 * Issue 12, item 3: price caps, the per-request cost cap, and rollups that no sequence of valid requests can
 * overflow. The review overflowed usage_totals of one shard with three users' unpaid records; from then on
 * every larger charge of any user of that shard answered 500.
 */
let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext();
  await request(ctx.app).get('/api/me').set('Authorization', admin.auth);
  // The dearest price allowed: 1,000,000 credits per 1M tokens, so N tokens cost N credits.
  const res = await request(ctx.app)
    .put('/api/models/capped-model')
    .set('Authorization', admin.auth)
    .send({ inputPricePer1M: 1_000_000, outputPricePer1M: '1000000', cachedInputPricePer1M: 1_000_000 });
  expect(res.status).toBe(201);
});
afterAll(() => ctx.close());

const admin = userWithRole('admin');
const supervisor = userWithRole('supervisor');

async function moneySnapshot() {
  return {
    records: await count(ctx.db, 'usage_records'),
    ledger: await count(ctx.db, 'credit_transactions'),
    sessions: await count(ctx.db, 'streaming_sessions'),
    prices: await count(ctx.db, 'model_prices'),
    keys: await count(ctx.db, 'idempotency_keys'),
  };
}

describe('Price caps', () => {
  test.each(['inputPricePer1M', 'outputPricePer1M', 'cachedInputPricePer1M'])(
    'When %s is above 1,000,000 credits per 1M tokens, then 400 VALIDATION_ERROR naming it and no version is created',
    async (field) => {
      const before = await moneySnapshot();
      const body: Record<string, unknown> = { inputPricePer1M: 1, outputPricePer1M: 1, [field]: '1000000.000001' };
      const res = await request(ctx.app).put('/api/models/too-dear').set('Authorization', admin.auth).send(body);
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe('VALIDATION_ERROR');
      expect(res.body.error.details.problems).toEqual([expect.objectContaining({ location: 'body', path: field })]);
      expect(await moneySnapshot()).toEqual(before);
    },
  );
});

describe('The cost of one request is at most 1,000,000,000 credits', () => {
  const user = userWithRole('user');
  beforeAll(() => grantDirect(ctx.db, user.id, 1000));

  test('When usage/record tokens cost more than the cap, then 400 naming the token fields and nothing is recorded', async () => {
    const before = await moneySnapshot();
    const res = await request(ctx.app)
      .post('/api/usage/record')
      .set('Authorization', user.auth)
      .send({ service: 'chat', operation: 'completion', modelId: 'capped-model', inputTokens: 500_000_000, outputTokens: 500_000_001 });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('VALIDATION_ERROR');
    expect(res.body.error.details.problems.map((p: { path: string }) => p.path)).toEqual(['inputTokens', 'outputTokens']);
    expect(await moneySnapshot()).toEqual(before);
  });

  test('When check or calculate would quote more than the cap, then 400 naming the token fields; exactly the cap is quoted', async () => {
    for (const path of ['/api/credits/check', '/api/credits/calculate']) {
      const over = await request(ctx.app).post(path).set('Authorization', user.auth).send({ modelId: 'capped-model', inputTokens: 500_000_000, outputTokens: 500_000_001 });
      expect(over.status).toBe(400);
      expect(over.body.error.code).toBe('VALIDATION_ERROR');
      expect(over.body.error.details.problems.map((p: { path: string }) => p.path)).toEqual(['inputTokens', 'outputTokens']);
      const at = await request(ctx.app).post(path).set('Authorization', user.auth).send({ modelId: 'capped-model', inputTokens: 500_000_000, outputTokens: 500_000_000 });
      expect(at.status).toBe(200);
    }
  });

  test('When usage/record tokens cost exactly the cap, then it is recorded (and unpaid beyond the balance)', async () => {
    const res = await request(ctx.app)
      .post('/api/usage/record')
      .set('Authorization', supervisor.auth)
      .send({ userId: 'cap-exact', service: 'chat', operation: 'completion', modelId: 'capped-model', inputTokens: 500_000_000, outputTokens: 500_000_000 });
    expect(res.status).toBe(201);
    expect(res.body.usageRecord.credits).toBe(1_000_000_000);
    expect(res.body.unpaidCredits).toBe(1_000_000_000);
  });

  test("When the review's attack request (1e12 + 1e12 tokens of claude-opus-4) is sent, then 400 and nothing is recorded", async () => {
    const before = await moneySnapshot();
    const res = await request(ctx.app)
      .post('/api/usage/record')
      .set('Authorization', user.auth)
      .send({ service: 'chat', operation: 'completion', modelId: 'claude-opus-4', inputTokens: 1e12, outputTokens: 1e12 });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('VALIDATION_ERROR');
    expect(await moneySnapshot()).toEqual(before);
  });

  test('When an initialize estimate or a finalize costs more than the cap, then 400 naming the fields and the session is untouched', async () => {
    const before = await moneySnapshot();
    const tooBig = await request(ctx.app)
      .post('/api/streaming-sessions/initialize')
      .set('Authorization', user.auth)
      .send({ modelId: 'capped-model', estimatedInputTokens: 1e12, estimatedOutputTokens: 0 });
    expect(tooBig.status).toBe(400);
    expect(tooBig.body.error.details.problems.map((p: { path: string }) => p.path)).toEqual(['estimatedInputTokens', 'estimatedOutputTokens']);
    expect(await moneySnapshot()).toEqual(before);

    const open = await request(ctx.app)
      .post('/api/streaming-sessions/initialize')
      .set('Authorization', user.auth)
      .send({ sessionId: 'cap-session', modelId: 'capped-model', estimatedInputTokens: 10, estimatedOutputTokens: 10 });
    expect(open.status).toBe(201);
    const held = await availableOf(ctx.db, user.id);
    const fin = await request(ctx.app)
      .post('/api/streaming-sessions/finalize')
      .set('Authorization', user.auth)
      .send({ sessionId: 'cap-session', actualInputTokens: 1, actualOutputTokens: 1_000_000_000 });
    expect(fin.status).toBe(400);
    expect(fin.body.error.details.problems.map((p: { path: string }) => p.path)).toEqual(['actualInputTokens', 'actualOutputTokens']);
    const [session] = await ctx.db.query<{ status: string }>(`SELECT status FROM streaming_sessions WHERE user_id = $1 AND id = 'cap-session'`, [user.id]);
    expect(session.status).toBe('active');
    expect(await availableOf(ctx.db, user.id)).toBe(held);
  });
});

describe('Shared rollups cannot overflow (replay of the shard attack)', () => {
  test('When three users of one shard push its totals past 2^63 micro-credits, then every user of the shard keeps being served', async () => {
    // Four users in the same usage shard (acct_usage_shard: hashtext & 15).
    const ids = (
      await ctx.db.query<{ id: string }>(
        `SELECT id FROM (SELECT 'shard-user-' || g AS id FROM generate_series(1, 400) g) x
          WHERE acct_usage_shard(id) = acct_usage_shard('shard-user-1') ORDER BY id LIMIT 4`,
      )
    ).map((r) => r.id);
    expect(ids).toHaveLength(4);
    const [victim, ...attackers] = ids;
    const shard = (await ctx.db.query<{ s: number }>(`SELECT acct_usage_shard($1) AS s`, [victim]))[0].s;

    // Arrange the end state of a long attack without sending 9,000 requests: the shard's totals, its daily
    // system row and each attacker's own daily rows sit 1 micro-credit and 1 token below what a bigint holds.
    const nearMax = '9223372036854775806';
    for (const attacker of attackers) {
      await request(ctx.app).post('/api/usage/record').set('Authorization', bearer(tokenFor({ sub: attacker })))
        .send({ service: 'chat', operation: 'completion', modelId: 'capped-model', inputTokens: 1, outputTokens: 1 });
    }
    await ctx.db.query(`UPDATE usage_totals SET credits = $1, unpaid_credits = $1 WHERE shard = $2 RETURNING 1`, [nearMax, shard]);
    await ctx.db.transaction(async (tx) => {
      await ctx.db.query(`SET LOCAL acct.bulk_rollup = 'on'`, [], tx);
      await ctx.db.query(
        `UPDATE usage_daily SET credits = $1, unpaid_credits = $1, input_tokens = $1, output_tokens = $1 WHERE user_id = ANY($2) RETURNING 1`,
        [nearMax, attackers],
        tx,
      );
    });
    await ctx.db.query(
      `UPDATE usage_daily_system SET credits = $1, unpaid_credits = $1, input_tokens = $1, output_tokens = $1
        WHERE shard = $2 AND model_id = 'capped-model' RETURNING 1`,
      [nearMax, shard],
    );
    await ctx.db.query(`UPDATE usage_user_daily SET credits = $1, unpaid_credits = $1 WHERE user_id = ANY($2) RETURNING 1`, [nearMax, attackers]);
    await ctx.db.query(`UPDATE usage_user_weekly SET credits = $1, unpaid_credits = $1 WHERE user_id = ANY($2) RETURNING 1`, [nearMax, attackers]);

    // The attack continues: each attacker records the largest request allowed, all unpaid.
    for (const attacker of attackers) {
      for (let i = 0; i < 3; i++) {
        const res = await request(ctx.app).post('/api/usage/record').set('Authorization', bearer(tokenFor({ sub: attacker })))
          .send({ service: 'chat', operation: 'completion', modelId: 'capped-model', inputTokens: 500_000_000, outputTokens: 500_000_000 });
        expect(res.status).toBe(201);
      }
    }

    // The victim in the same shard: initialize, finalize with an overage, and a session the sweeper expires.
    await grantDirect(ctx.db, victim, 10);
    const auth = bearer(tokenFor({ sub: victim }));
    const open = await request(ctx.app).post('/api/streaming-sessions/initialize').set('Authorization', auth)
      .send({ sessionId: 'v1', modelId: 'capped-model', estimatedInputTokens: 1, estimatedOutputTokens: 1 });
    expect(open.status).toBe(201);
    const fin = await request(ctx.app).post('/api/streaming-sessions/finalize').set('Authorization', auth)
      .send({ sessionId: 'v1', actualInputTokens: 5, actualOutputTokens: 20 });
    expect(fin.status).toBe(200);
    expect(fin.body.unpaidCredits).toBe(15);
    await grantDirect(ctx.db, victim, 10);
    const open2 = await request(ctx.app).post('/api/streaming-sessions/initialize').set('Authorization', auth)
      .send({ sessionId: 'v2', modelId: 'capped-model', estimatedInputTokens: 1, estimatedOutputTokens: 1 });
    expect(open2.status).toBe(201);
    await makeOverdue(ctx.db, `user_id = $1 AND id = 'v2'`, [victim]);
    expect(await ctx.services.sessions.expireOverdue()).toBe(1);

    const [totals] = await ctx.db.query<{ credits: string; over: boolean }>(
      `SELECT credits::text, credits > 9223372036854775807 AS over FROM usage_totals WHERE shard = $1`,
      [shard],
    );
    expect(totals.over).toBe(true);

    // Statistics read the sums exactly and answer.
    const system = await request(ctx.app).get('/api/usage/system-stats').set('Authorization', admin.auth);
    expect(system.status).toBe(200);
    expect(system.body.credits.unpaid).toBeGreaterThan(9.2e12);
    const own = await request(ctx.app).get('/api/usage/stats').set('Authorization', bearer(tokenFor({ sub: attackers[0] })));
    expect(own.status).toBe(200);
    expect(own.body.totals.inputTokens).toBeGreaterThan(2 ** 63);
    expect(await reconcile(ctx.app)).toMatchObject({ ok: true });
    const problems = (await ledgerProblems(ctx.db)) as { check: string }[];
    // The arranged rollups no longer match the records by design; the ledger checks must all hold.
    expect(problems.filter((p) => p.check !== 'rollup')).toEqual([]);
    // The expired session charged its estimated input (1 token = 1 credit) and released the rest.
    expect(await availableOf(ctx.db, victim)).toBe(micro(9));
  });
});

describe('Amounts are exactly decimals', () => {
  const user = userWithRole('user');
  test.each([
    ['/api/credits/allocate', { credits: ' 5' }],
    ['/api/credits/allocate', { credits: '5\n' }],
    ['/api/credits/adjust', { credits: ' -5', reason: 'spaces' }],
    ['/api/credits/adjust', { credits: '- 5', reason: 'spaces' }],
  ])('When %s gets credits %j, then 400 naming credits and nothing changes', async (path, extra) => {
    await grantDirect(ctx.db, user.id, 10);
    const before = await moneySnapshot();
    const res = await request(ctx.app).post(path).set('Authorization', supervisor.auth).send({ userId: user.id, ...extra });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('VALIDATION_ERROR');
    const problems = res.body.error.details.problems as { location: string; path: string }[];
    expect(problems.length).toBeGreaterThan(0);
    expect(problems.map((p) => `${p.location}:${p.path}`)).toEqual(problems.map(() => 'body:credits'));
    expect(await moneySnapshot()).toEqual(before);
  });
});

describe('What one user may hold is capped at 9,000,000,000,000 credits', () => {
  /**
   * Grants `userId` one lot that brings their lots to `belowCap` micro-credits under the cap (grants of up to
   * 1e9 credits each would take 9,000 requests to get there). The users here hold nothing in sessions.
   */
  async function fillToCap(userId: string, belowCap = 0n) {
    const [lots] = await ctx.db.query<{ micro: string }>(`SELECT coalesce(sum(remaining_credits), 0)::text AS micro FROM credit_allocations WHERE user_id = $1`, [userId]);
    await ctx.db.query(`SELECT acct_grant($1, $2::bigint, NULL, 'test', NULL)`, [userId, String(9_000_000_000_000_000_000n - belowCap - BigInt(lots.micro))]);
  }
  const rich = userWithRole('user');
  beforeAll(async () => {
    await grantDirect(ctx.db, rich.id, 1);
    await fillToCap(rich.id, micro(1000)); // 8,999,999,999,000 credits in all
  });

  test.each([
    ['/api/credits/allocate', {}],
    ['/api/credits/adjust', { reason: 'over the cap' }],
  ])('When %s would go over it, then 400 naming credits and nothing changes', async (path, extra) => {
    const before = await moneySnapshot();
    const res = await request(ctx.app).post(path).set('Authorization', supervisor.auth).send({ userId: rich.id, credits: 1000.000001, ...extra });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('VALIDATION_ERROR');
    expect(res.body.error.details.problems).toEqual([
      { location: 'body', path: 'credits', message: "would take the user's credits (lots plus holds) above 9000000000000" },
    ]);
    expect(await moneySnapshot()).toEqual(before);
  });

  test('When a grant takes the user exactly to it, then 201', async () => {
    const exact = await request(ctx.app).post('/api/credits/allocate').set('Authorization', supervisor.auth).send({ userId: rich.id, credits: 1000 });
    expect(exact.status).toBe(201);
    expect(exact.body.balance.availableCredits).toBe(9e12);
  });

  test('When a refund would take a user over it, then 400 naming credits and nothing changes', async () => {
    const spender = userWithRole('user');
    await grantDirect(ctx.db, spender.id, 1000);
    const used = await request(ctx.app).post('/api/usage/record').set('Authorization', spender.auth)
      .send({ service: 'chat', operation: 'completion', modelId: 'capped-model', inputTokens: 100, outputTokens: 0 });
    expect(used.status).toBe(201);
    // 900 left; granted up to the cap again after the spend.
    await fillToCap(spender.id);
    const before = await moneySnapshot();
    const res = await request(ctx.app).post(`/api/usage/records/${used.body.usageRecord.id}/refund`).set('Authorization', supervisor.auth)
      .send({ reason: 'over the cap', credits: 0.000001 });
    expect(res.status).toBe(400);
    expect(res.body.error.details.problems).toEqual([expect.objectContaining({ location: 'body', path: 'credits' })]);
    expect(await moneySnapshot()).toEqual(before);
  });

  test('When a scheduled grant would go over it, then that period grants and revokes nothing and the schedules due after it are still granted', async () => {
    // Its own user at exactly the cap, with an earlier grant of the schedule above its rollover cap.
    const capped = userWithRole('user');
    const other = userWithRole('user');
    const day = 86_400_000;
    const schedule = (userId: string, daysBack: number) =>
      request(ctx.app).post('/api/credits/schedules').set('Authorization', supervisor.auth)
        .send({ userId, credits: 1000, period: 'day', startAt: new Date(Date.now() - daysBack * day).toISOString() });
    const cappedSchedule = await schedule(capped.id, 3); // the oldest due: tried first
    const normal = await schedule(other.id, 1);
    expect([cappedSchedule.status, normal.status]).toEqual([201, 201]);
    // Its first periods granted (1,000 credits each), then the rest of the cap by hand.
    const early = await ctx.services.corrections.materializeSchedules(new Date(Date.now() - 2.5 * day));
    expect(early).toBeGreaterThan(0);
    // A rollover cap 500 credits below what its lots hold: each later period would revoke 500, then grant 1,000.
    await ctx.db.query(`UPDATE credit_schedules SET rollover_cap_credits = $2 WHERE id = $1`, [cappedSchedule.body.id, String(micro(early * 1000 - 500))]);
    await fillToCap(capped.id);
    const ledgerBefore = await count(ctx.db, 'credit_transactions', 'user_id = $1', [capped.id]);

    expect(await ctx.services.corrections.materializeSchedules(new Date())).toBe(2); // the other user's two periods
    expect(await count(ctx.db, 'credit_transactions', 'user_id = $1', [capped.id])).toBe(ledgerBefore); // no rollover revoke

    const grants = await ctx.db.query<{ schedule_id: string; n: string }>(
      `SELECT schedule_id::text, count(*)::text AS n FROM credit_schedule_grants WHERE schedule_id = ANY($1::bigint[]) GROUP BY 1`,
      [[cappedSchedule.body.id, normal.body.id]],
    );
    expect(grants).toEqual(expect.arrayContaining([{ schedule_id: cappedSchedule.body.id, n: String(early) }, { schedule_id: normal.body.id, n: '2' }]));
    expect(grants).toHaveLength(2);
    const [next] = await ctx.db.query<{ due: boolean }>(`SELECT next_period_start <= now() AS due FROM credit_schedules WHERE id = $1`, [cappedSchedule.body.id]);
    expect(next.due).toBe(false);
    expect(await availableOf(ctx.db, other.id)).toBe(micro(2000));
    expect(await reconcile(ctx.app)).toMatchObject({ ok: true });
  });
});
