import request from 'supertest';
import { createTestContext, type TestContext } from '../support/context';
import { allEventsVisible, grantDirect, micro } from '../support/db';
import { bearer, tokenFor, userWithRole } from '../support/tokens';
import { addTestModel, reconcile, TEST_MODEL } from '../sessions/support';
import { budgetProblems, counterOf } from './support';

/** Budgets on extend, refunds and budget.threshold events (docs/budgets.md). TEST_MODEL: 1,000 input tokens = 1 credit. */
let ctx: TestContext;
const supervisor = userWithRole('supervisor');

beforeAll(async () => {
  ctx = await createTestContext();
  await addTestModel(ctx.db);
});
// acct_reconcile (through the API) covers refunds; the sessions suite's older ledger checks do not.
afterEach(async () => {
  expect(await reconcile(ctx.app)).toMatchObject({ ok: true, discrepancies: [] });
  expect(await budgetProblems(ctx.db)).toEqual([]);
});
afterAll(() => ctx.close());

const post = (path: string, auth: string, body: object) => request(ctx.app).post(path).set('Authorization', auth).send(body);
const createBudget = async (body: object): Promise<string> => {
  const res = await post('/api/budgets', supervisor.auth, body);
  expect(res.status).toBe(201);
  return res.body.id as string;
};
const initialize = (auth: string, body: object) => post('/api/streaming-sessions/initialize', auth, { modelId: TEST_MODEL, ...body });
const extend = (auth: string, body: object) => post('/api/streaming-sessions/extend', auth, body);

async function userWithCredits(credits: number, org?: string) {
  const user = userWithRole('user');
  const auth = org === undefined ? user.auth : bearer(tokenFor({ sub: user.id, extra: { org } }));
  await grantDirect(ctx.db, user.id, credits);
  return { id: user.id, auth };
}

/** What the session holds, its hold legs, and the user's live lots, straight from the tables. */
async function holdState(userId: string, sessionId: string) {
  const [row] = await ctx.db.query<{ allocated: string; legs: string; lots: string }>(
    `SELECT s.allocated_credits::text AS allocated,
            (SELECT coalesce(sum(held_credits), 0) FROM session_holds h WHERE h.user_id = s.user_id AND h.session_id = s.id)::text AS legs,
            (SELECT coalesce(sum(remaining_credits), 0) FROM credit_allocations a WHERE a.user_id = s.user_id)::text AS lots
       FROM streaming_sessions s WHERE s.user_id = $1 AND s.id = $2`,
    [userId, sessionId],
  );
  return row;
}

async function thresholdEvents(auth: string) {
  await allEventsVisible(ctx.db);
  const res = await request(ctx.app).get('/api/events').query({ type: 'budget.threshold', limit: 500 }).set('Authorization', auth);
  expect(res.status).toBe(200);
  return res.body.data as Array<{ type: string; userId: string; orgId?: string; data: Record<string, unknown> }>;
}

describe('extend and budgets', () => {
  test('When an extension fits every budget, then it is held on the user\u2019s and the org\u2019s counters; when it would exceed one, 402 BUDGET_EXCEEDED and nothing moves', async () => {
    const org = `ext-org-${Date.now()}`;
    const user = await userWithCredits(100, org);
    const own = await createBudget({ scope: { userId: user.id }, period: 'day', limitCredits: 10 });
    const shared = await createBudget({ scope: { orgId: org }, period: 'month', limitCredits: 50 });
    const s = await initialize(user.auth, { estimatedCredits: 4 });
    expect(s.status).toBe(201);
    const sessionId = s.body.sessionId as string;

    const ok = await extend(user.auth, { sessionId, additionalCredits: 5 });
    expect(ok.status).toBe(200);
    expect(ok.body.allocatedCredits).toBe(9);
    expect(await counterOf(ctx.db, own)).toEqual({ spent: 0n, held: micro(9) });
    expect(await counterOf(ctx.db, shared)).toEqual({ spent: 0n, held: micro(9) });

    const before = await holdState(user.id, sessionId);
    const refused = await extend(user.auth, { sessionId, additionalCredits: 1.5, ttlSeconds: 900 });
    expect(refused.status).toBe(402);
    expect(refused.body.error.code).toBe('BUDGET_EXCEEDED');
    expect(refused.body.error.details).toEqual({
      budgetId: own,
      scope: { userId: user.id },
      period: 'day',
      limitCredits: 10,
      spentCredits: 0,
      heldCredits: 9,
      resetsAt: expect.any(String),
    });
    expect(await holdState(user.id, sessionId)).toEqual(before);
    expect(await counterOf(ctx.db, own)).toEqual({ spent: 0n, held: micro(9) });
    expect(await counterOf(ctx.db, shared)).toEqual({ spent: 0n, held: micro(9) });

    // Exactly up to the limit fits; the finalize moves the whole larger hold to spent.
    expect((await extend(user.auth, { sessionId, additionalCredits: 1 })).status).toBe(200);
    expect(await counterOf(ctx.db, own)).toEqual({ spent: 0n, held: micro(10) });
    const fin = await post('/api/streaming-sessions/finalize', user.auth, { sessionId, actualInputTokens: 7000, actualOutputTokens: 0 });
    expect(fin.status).toBe(200);
    expect(fin.body).toMatchObject({ allocatedCredits: 10, usedCredits: 7, refundedCredits: 3 });
    expect(await counterOf(ctx.db, own)).toEqual({ spent: micro(7), held: 0n });
    expect(await counterOf(ctx.db, shared)).toEqual({ spent: micro(7), held: 0n });
  });

  test('When an org budget is the one exceeded, then its details come back; a TTL-only extend is never refused', async () => {
    const org = `ext-org2-${Date.now()}`;
    const a = await userWithCredits(100, org);
    const b = await userWithCredits(100, org);
    const shared = await createBudget({ scope: { orgId: org }, period: 'week', limitCredits: 10 });
    const sa = await initialize(a.auth, { estimatedCredits: 6 });
    expect((await initialize(b.auth, { estimatedCredits: 4 })).status).toBe(201);
    const refused = await extend(a.auth, { sessionId: sa.body.sessionId, additionalCredits: 0.000001 });
    expect(refused.status).toBe(402);
    expect(refused.body.error.details).toMatchObject({ budgetId: shared, scope: { orgId: org }, period: 'week', heldCredits: 10, limitCredits: 10 });
    const ttl = await extend(a.auth, { sessionId: sa.body.sessionId, ttlSeconds: 900 });
    expect(ttl.status).toBe(200);
    expect(await counterOf(ctx.db, shared)).toEqual({ spent: 0n, held: micro(10) });
    await post('/api/streaming-sessions/abort', a.auth, { sessionId: sa.body.sessionId });
    expect(await counterOf(ctx.db, shared)).toEqual({ spent: 0n, held: micro(4) });
  });

  test('When the budget allows the extension but the credits do not, then 402 INSUFFICIENT_CREDITS and the counters are unchanged', async () => {
    const user = await userWithCredits(5);
    const own = await createBudget({ scope: { userId: user.id }, period: 'day', limitCredits: 100 });
    const s = await initialize(user.auth, { estimatedCredits: 4 });
    const res = await extend(user.auth, { sessionId: s.body.sessionId, additionalCredits: 2 });
    expect(res.status).toBe(402);
    expect(res.body.error.code).toBe('INSUFFICIENT_CREDITS');
    expect(await counterOf(ctx.db, own)).toEqual({ spent: 0n, held: micro(4) });
    expect((await extend(user.auth, { sessionId: s.body.sessionId, additionalCredits: 1 })).status).toBe(200);
    expect(await counterOf(ctx.db, own)).toEqual({ spent: 0n, held: micro(5) });
    await post('/api/streaming-sessions/abort', user.auth, { sessionId: s.body.sessionId });
    expect(await counterOf(ctx.db, own)).toEqual({ spent: 0n, held: 0n });
  });

  test('When a session was opened before a budget existed, then its extension does not count on that budget (as its finalize does not)', async () => {
    const user = await userWithCredits(100);
    const s = await initialize(user.auth, { estimatedCredits: 4 });
    const own = await createBudget({ scope: { userId: user.id }, period: 'day', limitCredits: 1 });
    expect((await extend(user.auth, { sessionId: s.body.sessionId, additionalCredits: 5 })).status).toBe(200);
    expect(await counterOf(ctx.db, own)).toEqual({ spent: 0n, held: 0n });
    await post('/api/streaming-sessions/abort', user.auth, { sessionId: s.body.sessionId });
  });
});

describe('refunds and budgets', () => {
  test('When a usage record is refunded, then the refunded amount leaves the budget\u2019s spend, also for a record in an earlier period', async () => {
    const user = await userWithCredits(100);
    const own = await createBudget({ scope: { userId: user.id }, period: 'day', limitCredits: 10 });
    const today = await post('/api/usage/record', user.auth, { service: 'chat', operation: 'completion', credits: 8 });
    expect(today.status).toBe(201);
    const threeDaysAgo = new Date(Date.now() - 3 * 86_400_000);
    const earlier = await post('/api/usage/record', supervisor.auth, {
      userId: user.id,
      service: 'chat',
      operation: 'completion',
      credits: 6,
      occurredAt: threeDaysAgo.toISOString(),
    });
    expect(earlier.status).toBe(201);
    const [{ start }] = await ctx.db.query<{ start: Date }>(`SELECT acct_budget_period_start('day', 'UTC', $1::timestamptz) AS start`, [threeDaysAgo]);
    expect(await counterOf(ctx.db, own, start)).toEqual({ spent: micro(6), held: 0n });
    expect((await initialize(user.auth, { estimatedCredits: 3 })).status).toBe(402);

    const r1 = await post(`/api/usage/records/${today.body.usageRecord.id}/refund`, supervisor.auth, { reason: 'bad answer', credits: 5 });
    expect(r1.status).toBe(200);
    expect(await counterOf(ctx.db, own)).toEqual({ spent: micro(3), held: 0n });
    expect(await counterOf(ctx.db, own, start)).toEqual({ spent: micro(6), held: 0n });
    expect((await initialize(user.auth, { estimatedCredits: 7 })).status).toBe(201);

    const r2 = await post(`/api/usage/records/${earlier.body.usageRecord.id}/refund`, supervisor.auth, { reason: 'late refund' });
    expect(r2.status).toBe(200);
    expect(await counterOf(ctx.db, own, start)).toEqual({ spent: 0n, held: 0n });
    expect(await counterOf(ctx.db, own)).toEqual({ spent: micro(3), held: micro(7) });
  });

  test('When a finalized session\u2019s record is refunded, then the spend of the session\u2019s budget period goes down', async () => {
    const org = `ref-org-${Date.now()}`;
    const user = await userWithCredits(100, org);
    const own = await createBudget({ scope: { userId: user.id }, period: 'day', limitCredits: 10 });
    const shared = await createBudget({ scope: { orgId: org }, period: 'day', limitCredits: 10 });
    const s = await initialize(user.auth, { estimatedCredits: 5 });
    await post('/api/streaming-sessions/finalize', user.auth, { sessionId: s.body.sessionId, actualInputTokens: 4000, actualOutputTokens: 0 });
    expect(await counterOf(ctx.db, own)).toEqual({ spent: micro(4), held: 0n });
    const [{ id }] = await ctx.db.query<{ id: string }>(`SELECT id::text FROM usage_records WHERE user_id = $1 AND session_id = $2`, [user.id, s.body.sessionId]);
    const refunded = await post(`/api/usage/records/${id}/refund`, supervisor.auth, { reason: 'outage', credits: 2.5 });
    expect(refunded.status).toBe(200);
    expect(await counterOf(ctx.db, own)).toEqual({ spent: micro(1.5), held: 0n });
    expect(await counterOf(ctx.db, shared)).toEqual({ spent: micro(1.5), held: 0n });
    const tooMuch = await post(`/api/usage/records/${id}/refund`, supervisor.auth, { reason: 'again', credits: 2 });
    expect(tooMuch.status).toBe(400);
    expect(await counterOf(ctx.db, own)).toEqual({ spent: micro(1.5), held: 0n });
  });
});

describe('budget.threshold events', () => {
  test('When spent + held reach 80% and then 100% of a budget, then one event each, once per period, for the user and the org', async () => {
    const org = `thr-org-${Date.now()}`;
    const user = await userWithCredits(100, org);
    const own = await createBudget({ scope: { userId: user.id }, period: 'day', limitCredits: 10 });
    const shared = await createBudget({ scope: { orgId: org }, period: 'month', limitCredits: 100 });

    const a = await initialize(user.auth, { estimatedCredits: 7 });
    expect(await thresholdEvents(user.auth)).toEqual([]);
    // 7 + 1 = 8 of 10: 80% of the user's budget (the org's is at 8%).
    expect((await post('/api/usage/record', user.auth, { service: 'chat', operation: 'completion', credits: 1 })).status).toBe(201);
    let events = await thresholdEvents(user.auth);
    expect(events).toEqual([
      expect.objectContaining({
        type: 'budget.threshold',
        userId: user.id,
        orgId: org,
        data: {
          budgetId: own,
          scope: { userId: user.id },
          period: 'day',
          modelId: null,
          thresholdPercent: 80,
          limitCredits: 10,
          spentCredits: 1,
          heldCredits: 7,
          periodStart: expect.stringMatching(/^\d{4}-\d\d-\d\dT00:00:00\.000Z$/),
          resetsAt: new Date(new Date().setUTCHours(24, 0, 0, 0)).toISOString(),
        },
      }),
    ]);
    // Still between 80% and 100%: nothing new.
    const b = await initialize(user.auth, { estimatedCredits: 0.5 });
    expect(await thresholdEvents(user.auth)).toHaveLength(1);
    // An extension to exactly the limit: 100%.
    expect((await extend(user.auth, { sessionId: b.body.sessionId, additionalCredits: 1.5 })).status).toBe(200);
    events = await thresholdEvents(user.auth);
    expect(events.map((e) => [e.data.budgetId, e.data.thresholdPercent])).toEqual([
      [own, 80],
      [own, 100],
    ]);
    expect(events[1].data).toMatchObject({ spentCredits: 1, heldCredits: 9 });

    // Down and up again in the same period: no second announcement.
    await post('/api/streaming-sessions/abort', user.auth, { sessionId: a.body.sessionId });
    await post('/api/streaming-sessions/abort', user.auth, { sessionId: b.body.sessionId });
    expect((await initialize(user.auth, { estimatedCredits: 9 })).status).toBe(201);
    expect(await thresholdEvents(user.auth)).toHaveLength(2);
    expect(await counterOf(ctx.db, shared)).toEqual({ spent: micro(1), held: micro(9) });
  });

  test('When a finalize overruns an org budget, then the org\u2019s 80% and 100% come in one movement, lowest first; a refused request writes none', async () => {
    const org = `thr-org2-${Date.now()}`;
    const user = await userWithCredits(100, org);
    const shared = await createBudget({ scope: { orgId: org }, period: 'week', limitCredits: 5 });
    const s = await initialize(user.auth, { estimatedCredits: 1 });
    expect(await thresholdEvents(user.auth)).toEqual([]);
    expect((await initialize(user.auth, { estimatedCredits: 4.5 })).status).toBe(402);
    expect(await thresholdEvents(user.auth)).toEqual([]);
    const fin = await post('/api/streaming-sessions/finalize', user.auth, { sessionId: s.body.sessionId, actualInputTokens: 6000, actualOutputTokens: 0 });
    expect(fin.status).toBe(200);
    const events = await thresholdEvents(user.auth);
    expect(events.map((e) => [e.orgId, e.data.budgetId, e.data.scope, e.data.thresholdPercent, e.data.spentCredits])).toEqual([
      [org, shared, { orgId: org }, 80, 6],
      [org, shared, { orgId: org }, 100, 6],
    ]);
  });
});
