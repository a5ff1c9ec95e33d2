import request from 'supertest';
import { pgErrorCode } from '../../src/db/database';
import { createTestContext, type TestContext } from '../support/context';
import { count, grantDirect, micro } from '../support/db';
import { bearer, tokenFor, userWithRole } from '../support/tokens';
import { addTestModel, ledgerProblems, makeOverdue, reconcile, TEST_MODEL } from '../sessions/support';
import { budgetProblems, counterOf } from './support';

let ctx: TestContext;
const supervisor = userWithRole('supervisor');
const admin = userWithRole('admin');

beforeAll(async () => {
  ctx = await createTestContext();
  await addTestModel(ctx.db);
  await addTestModel(ctx.db, 'other-model');
});
afterEach(async () => {
  expect(await reconcile(ctx.app)).toMatchObject({ ok: true, discrepancies: [] });
  expect(await ledgerProblems(ctx.db)).toEqual([]);
  expect(await budgetProblems(ctx.db)).toEqual([]);
});
afterAll(() => ctx.close());

const api = {
  post: (path: string, auth: string, body: object) => request(ctx.app).post(path).set('Authorization', auth).send(body),
  get: (path: string, auth: string) => request(ctx.app).get(path).set('Authorization', auth),
};
const createBudget = (body: object, auth = supervisor.auth) => api.post('/api/budgets', auth, body);
const initialize = (auth: string, body: object) => api.post('/api/streaming-sessions/initialize', auth, { modelId: TEST_MODEL, ...body });

async function userWithCredits(credits = 1000, org?: string) {
  const user = userWithRole('user');
  const auth = org === undefined ? user.auth : bearer(tokenFor({ sub: user.id, extra: { org } }));
  await grantDirect(ctx.db, user.id, credits);
  return { id: user.id, auth };
}

describe('organizations', () => {
  test('When a supervisor sets a user\u2019s org, then balance, /me and the table show it; null removes it', async () => {
    const user = await userWithCredits(5);
    const put = await request(ctx.app).put(`/api/users/${user.id}/org`).set('Authorization', supervisor.auth).send({ orgId: 'acme' });
    expect(put.status).toBe(200);
    expect(put.body).toEqual({ userId: user.id, orgId: 'acme' });
    expect((await api.get('/api/credits/balance', user.auth)).body).toMatchObject({ userId: user.id, orgId: 'acme', budgets: [] });
    expect((await api.get(`/api/credits/balance/${user.id}`, admin.auth)).body.orgId).toBe('acme');
    expect((await api.get('/api/me', user.auth)).body.orgId).toBe('acme');

    const cleared = await request(ctx.app).put(`/api/users/${user.id}/org`).set('Authorization', admin.auth).send({ orgId: null });
    expect(cleared.body).toEqual({ userId: user.id, orgId: null });
    expect(await count(ctx.db, 'user_accounts', 'id = $1 AND org_id IS NULL', [user.id])).toBe(1);
  });

  test('When a plain user sets an org or the body is bad, then 403 / 400 and nothing changes', async () => {
    const user = await userWithCredits(1);
    const forbidden = await request(ctx.app).put(`/api/users/${user.id}/org`).set('Authorization', user.auth).send({ orgId: 'x' });
    expect(forbidden.status).toBe(403);
    const bad = await request(ctx.app).put(`/api/users/${user.id}/org`).set('Authorization', supervisor.auth).send({ org: 'x' });
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe('VALIDATION_ERROR');
    expect(await count(ctx.db, 'user_accounts', 'id = $1 AND org_id IS NOT NULL', [user.id])).toBe(0);
  });

  test('When the token carries the org claim, then it is mirrored and wins over a stored org; a token without it keeps the stored one', async () => {
    const id = `orgclaim-${Date.now()}`;
    await grantDirect(ctx.db, id, 1);
    await request(ctx.app).put(`/api/users/${id}/org`).set('Authorization', supervisor.auth).send({ orgId: 'set-by-supervisor' });
    const plain = bearer(tokenFor({ sub: id }));
    expect((await api.get('/api/credits/balance', plain)).body.orgId).toBe('set-by-supervisor');

    const withOrg = bearer(tokenFor({ sub: id, extra: { org: 'from-token' } }));
    expect((await api.get('/api/credits/balance', withOrg)).body.orgId).toBe('from-token');
    expect(await count(ctx.db, 'user_accounts', 'id = $1 AND org_id = $2', [id, 'from-token'])).toBe(1);
    expect((await api.get('/api/credits/balance', plain)).body.orgId).toBe('from-token');
  });

  test('When the org claim is not a valid id, then 401', async () => {
    const res = await api.get('/api/credits/balance', bearer(tokenFor({ extra: { org: 'bad\u0000org' } })));
    expect(res.status).toBe(401);
    const numeric = await api.get('/api/credits/balance', bearer(tokenFor({ extra: { org: 42 } })));
    expect(numeric.status).toBe(401);
    // The same rules as an org id in a body (the review: a right-to-left override or a C1 control passed).
    for (const org of ['acme\u202eevil', 'acme\u0085']) {
      expect((await api.get('/api/credits/balance', bearer(tokenFor({ extra: { org } })))).status).toBe(401);
    }
  });
});

describe('budgets CRUD', () => {
  test('When a supervisor creates a budget, then 201 with the budget; list, patch and delete work; unknown ids are 404', async () => {
    const user = await userWithCredits(1);
    const res = await createBudget({ scope: { userId: user.id }, period: 'day', limitCredits: 10 });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({
      id: expect.any(String),
      scope: { userId: user.id },
      period: 'day',
      limitCredits: 10,
      modelId: null,
      timezone: 'UTC',
      createdBy: supervisor.id,
    });
    const id = res.body.id as string;
    const org = await createBudget({ scope: { orgId: 'org-crud' }, period: 'month', limitCredits: '2.5', modelId: TEST_MODEL, timezone: 'Europe/Berlin' });
    expect(org.status).toBe(201);
    expect(org.body).toMatchObject({ scope: { orgId: 'org-crud' }, period: 'month', limitCredits: 2.5, modelId: TEST_MODEL, timezone: 'Europe/Berlin' });

    const listed = await api.get(`/api/budgets?userId=${user.id}`, admin.auth);
    expect(listed.status).toBe(200);
    expect(listed.body).toEqual({ data: [res.body], nextCursor: null });
    expect((await api.get('/api/budgets?orgId=org-crud', admin.auth)).body.data.map((b: { id: string }) => b.id)).toEqual([org.body.id]);

    const patched = await request(ctx.app).patch(`/api/budgets/${id}`).set('Authorization', supervisor.auth).send({ limitCredits: 20 });
    expect(patched.status).toBe(200);
    expect(patched.body.limitCredits).toBe(20);
    expect(await count(ctx.db, 'budgets', 'id = $1::bigint AND limit_credits = $2', [id, micro(20).toString()])).toBe(1);

    const deleted = await request(ctx.app).delete(`/api/budgets/${id}`).set('Authorization', supervisor.auth);
    expect(deleted.status).toBe(204);
    expect(await count(ctx.db, 'budgets', 'id = $1::bigint', [id])).toBe(0);
    expect((await request(ctx.app).delete(`/api/budgets/${id}`).set('Authorization', supervisor.auth)).status).toBe(404);
    expect((await request(ctx.app).patch('/api/budgets/nope').set('Authorization', supervisor.auth).send({ limitCredits: 1 })).status).toBe(404);
  });

  test.each([
    ['an unknown time zone', { scope: { orgId: 'o' }, period: 'day', limitCredits: 1, timezone: 'Mars/Olympus' }],
    ['an offset instead of a zone', { scope: { orgId: 'o' }, period: 'day', limitCredits: 1, timezone: '+02:00' }],
    ['both scopes', { scope: { orgId: 'o', userId: 'u' }, period: 'day', limitCredits: 1 }],
    ['no scope', { period: 'day', limitCredits: 1 }],
    ['an unknown period', { scope: { orgId: 'o' }, period: 'year', limitCredits: 1 }],
    ['a negative limit', { scope: { orgId: 'o' }, period: 'day', limitCredits: -1 }],
    ['seven decimals', { scope: { orgId: 'o' }, period: 'day', limitCredits: '0.0000001' }],
    ['an unknown field', { scope: { orgId: 'o' }, period: 'day', limitCredits: 1, spent: 0 }],
  ])('When the body has %s, then 400 and no budget is created', async (_name, body) => {
    const before = await count(ctx.db, 'budgets');
    const res = await createBudget(body);
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('VALIDATION_ERROR');
    expect(await count(ctx.db, 'budgets')).toBe(before);
  });

  test('When a create is retried with its Idempotency-Key, then one budget; the same key with another body is 422', async () => {
    const user = userWithRole('user');
    const body = { scope: { userId: user.id }, period: 'day', limitCredits: 7 };
    const send = (payload: object) => request(ctx.app).post('/api/budgets').set('Authorization', supervisor.auth).set('Idempotency-Key', `budget-${user.id}`).send(payload);
    const first = await send(body);
    const again = await send(body);
    expect([first.status, again.status, again.headers['idempotent-replayed']]).toEqual([201, 201, 'true']);
    expect(again.body).toEqual(first.body);
    expect((await send({ ...body, limitCredits: 8 })).status).toBe(422);
    expect(await count(ctx.db, 'budgets', 'user_id = $1', [user.id])).toBe(1);
    // The fuzz's case: the same key with a body naming a new user is refused and creates no user.
    expect((await send({ ...body, scope: { userId: `${user.id}-other` } })).status).toBe(422);
    expect(await count(ctx.db, 'user_accounts', 'id = $1', [`${user.id}-other`])).toBe(0);
  });

  test('When the budget names a model without a price, then 400 UNKNOWN_MODEL', async () => {
    const res = await createBudget({ scope: { orgId: 'o' }, period: 'day', limitCredits: 1, modelId: 'no-such-model' });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('UNKNOWN_MODEL');
  });

  test('When a plain user manages budgets, then 403', async () => {
    const user = userWithRole('user');
    expect((await createBudget({ scope: { userId: user.id }, period: 'day', limitCredits: 1 }, user.auth)).status).toBe(403);
    expect((await api.get('/api/budgets', user.auth)).status).toBe(403);
    expect((await api.get(`/api/budgets/status?userId=${supervisor.id}`, user.auth)).status).toBe(403);
    expect((await api.get('/api/budgets/status?orgId=x', user.auth)).status).toBe(403);
  });
});

describe('enforcement', () => {
  test('When holds reach a user\u2019s daily budget, then initialize is refused with BUDGET_EXCEEDED and nothing is held; finalize moves held to spent', async () => {
    const user = await userWithCredits(1000);
    const budget = (await createBudget({ scope: { userId: user.id }, period: 'day', limitCredits: 10 })).body;

    const first = await initialize(user.auth, { estimatedCredits: 6 });
    expect(first.status).toBe(201);
    expect(await counterOf(ctx.db, budget.id)).toEqual({ spent: 0n, held: micro(6) });

    const refused = await initialize(user.auth, { estimatedCredits: 5 });
    expect(refused.status).toBe(402);
    expect(refused.body.error.code).toBe('BUDGET_EXCEEDED');
    expect(refused.body.error.details).toEqual({
      budgetId: budget.id,
      scope: { userId: user.id },
      period: 'day',
      limitCredits: 10,
      spentCredits: 0,
      heldCredits: 6,
      resetsAt: expect.any(String),
    });
    const resetsAt = new Date(refused.body.error.details.resetsAt);
    const tomorrow = new Date();
    tomorrow.setUTCHours(24, 0, 0, 0);
    expect(resetsAt.toISOString()).toBe(tomorrow.toISOString());
    expect(await count(ctx.db, 'streaming_sessions', 'user_id = $1', [user.id])).toBe(1);

    const check = await api.post('/api/credits/check', user.auth, { credits: 5 });
    expect(check.status).toBe(200);
    expect(check.body).toMatchObject({ sufficient: false, requiredCredits: 5, limitedBy: { code: 'BUDGET_EXCEEDED', budgetId: budget.id, heldCredits: 6 } });
    expect((await api.post('/api/credits/check', user.auth, { credits: 4 })).body).toMatchObject({ sufficient: true });

    // 1000 input tokens = 1 credit: held 6 -> spent 1.
    const fin = await api.post('/api/streaming-sessions/finalize', user.auth, { sessionId: first.body.sessionId, actualInputTokens: 1000, actualOutputTokens: 0 });
    expect(fin.status).toBe(200);
    expect(await counterOf(ctx.db, budget.id)).toEqual({ spent: micro(1), held: 0n });
    expect((await initialize(user.auth, { estimatedCredits: 9 })).status).toBe(201);
    expect((await initialize(user.auth, { estimatedCredits: 0.000001 })).status).toBe(402);

    const status = await api.get('/api/budgets/status', user.auth);
    expect(status.status).toBe(200);
    expect(status.body.data).toEqual([
      {
        budgetId: budget.id,
        scope: { userId: user.id },
        period: 'day',
        modelId: null,
        limitCredits: 10,
        spentCredits: 1,
        heldCredits: 9,
        remainingCredits: 0,
        periodStart: expect.any(String),
        resetsAt: tomorrow.toISOString(),
      },
    ]);
    const balance = await api.get('/api/credits/balance', user.auth);
    expect(balance.body.budgets).toEqual(status.body.data);
  });

  test('When a finalize costs more than the hold, then it is never refused; the overage counts as spent and the next initialize is refused', async () => {
    const user = await userWithCredits(1000);
    const budget = (await createBudget({ scope: { userId: user.id }, period: 'week', limitCredits: 3 })).body;
    const s = await initialize(user.auth, { estimatedCredits: 2 });
    const fin = await api.post('/api/streaming-sessions/finalize', user.auth, { sessionId: s.body.sessionId, actualInputTokens: 5000, actualOutputTokens: 0 });
    expect(fin.status).toBe(200);
    expect(fin.body.usedCredits).toBe(5);
    expect(await counterOf(ctx.db, budget.id)).toEqual({ spent: micro(5), held: 0n });
    const refused = await initialize(user.auth, { estimatedCredits: 0.000001 });
    expect(refused.status).toBe(402);
    expect(refused.body.error.details).toMatchObject({ spentCredits: 5, heldCredits: 0, limitCredits: 3, period: 'week' });
  });

  test('When a session is aborted or expires, then its hold leaves the budget (expiry counts what it charged as spent)', async () => {
    const user = await userWithCredits(1000);
    const budget = (await createBudget({ scope: { userId: user.id }, period: 'month', limitCredits: 100 })).body;
    const a = await initialize(user.auth, { estimatedCredits: 10 });
    const b = await initialize(user.auth, { estimatedInputTokens: 3000, estimatedOutputTokens: 1000 }); // 3 + 2 credits
    expect(await counterOf(ctx.db, budget.id)).toEqual({ spent: 0n, held: micro(15) });
    await api.post('/api/streaming-sessions/abort', user.auth, { sessionId: a.body.sessionId });
    expect(await counterOf(ctx.db, budget.id)).toEqual({ spent: 0n, held: micro(5) });

    await makeOverdue(ctx.db, 'id = $1', [b.body.sessionId]);
    expect(await ctx.services.sessions.expireOverdue()).toBeGreaterThanOrEqual(1);
    // Default policy charge_estimated_input: 3000 input tokens = 3 credits.
    expect(await counterOf(ctx.db, budget.id)).toEqual({ spent: micro(3), held: 0n });

    // A late finalize corrects the spend in the same period's row (real cost 1 credit < 3 charged by expiry).
    const late = await api.post('/api/streaming-sessions/finalize', user.auth, { sessionId: b.body.sessionId, actualInputTokens: 1000, actualOutputTokens: 0 });
    expect(late.status).toBe(200);
    expect(await counterOf(ctx.db, budget.id)).toEqual({ spent: micro(1), held: 0n });
  });

  test('When a user records their own usage over budget, then 402 BUDGET_EXCEEDED and nothing is recorded; a supervisor\u2019s record for them is never refused', async () => {
    const user = await userWithCredits(1000);
    const budget = (await createBudget({ scope: { userId: user.id }, period: 'day', limitCredits: 5 })).body;
    const ok = await api.post('/api/usage/record', user.auth, { service: 'chat', operation: 'completion', credits: 4 });
    expect(ok.status).toBe(201);
    const refused = await api.post('/api/usage/record', user.auth, { service: 'chat', operation: 'completion', credits: 2 });
    expect(refused.status).toBe(402);
    expect(refused.body.error).toMatchObject({ code: 'BUDGET_EXCEEDED', details: { budgetId: budget.id, spentCredits: 4, heldCredits: 0, limitCredits: 5 } });
    expect(await count(ctx.db, 'usage_records', 'user_id = $1', [user.id])).toBe(1);

    const bySupervisor = await api.post('/api/usage/record', supervisor.auth, { userId: user.id, service: 'chat', operation: 'completion', credits: 2 });
    expect(bySupervisor.status).toBe(201);
    expect(await counterOf(ctx.db, budget.id)).toEqual({ spent: micro(6), held: 0n });
  });

  test('When an org budget is reached by its members, then every member is refused and a user outside the org is not', async () => {
    const org = `org-${Date.now()}`;
    const a = await userWithCredits(100, org);
    const b = await userWithCredits(100, org);
    const outsider = await userWithCredits(100);
    const budget = (await createBudget({ scope: { orgId: org }, period: 'day', limitCredits: 10, timezone: 'America/New_York' })).body;

    expect((await initialize(a.auth, { estimatedCredits: 7 })).status).toBe(201);
    const refused = await initialize(b.auth, { estimatedCredits: 4 });
    expect(refused.status).toBe(402);
    expect(refused.body.error.details).toMatchObject({ budgetId: budget.id, scope: { orgId: org }, heldCredits: 7 });
    expect((await initialize(b.auth, { estimatedCredits: 3 })).status).toBe(201);
    expect((await initialize(outsider.auth, { estimatedCredits: 50 })).status).toBe(201);

    const status = await api.get(`/api/budgets/status?orgId=${org}`, supervisor.auth);
    expect(status.body.data).toEqual([expect.objectContaining({ budgetId: budget.id, heldCredits: 10, remainingCredits: 0 })]);
    expect((await api.get(`/api/budgets/status?userId=${a.id}`, supervisor.auth)).body.data).toHaveLength(1);
    // Periods follow New York's calendar day.
    const local = new Intl.DateTimeFormat('en-CA', { timeZone: 'America/New_York', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
    expect(local.format(new Date(status.body.data[0].periodStart))).toBe('00:00');
    expect(local.format(new Date(status.body.data[0].resetsAt))).toBe('00:00');
  });

  test('When the user\u2019s org changed between the budget lock and the user row lock, then the stored org\u2019s budgets decide and hold', async () => {
    // acct_session_open locks the budgets of the org it read before locking the user row; a PUT of the org
    // in between is simulated by passing the budgets of another org: the open must notice and use the stored one.
    const stale = `org-stale-${Date.now()}`;
    const current = `org-now-${Date.now()}`;
    const user = await userWithCredits(100);
    expect((await request(ctx.app).put(`/api/users/${user.id}/org`).set('Authorization', supervisor.auth).send({ orgId: current })).status).toBe(200);
    const staleBudget = (await createBudget({ scope: { orgId: stale }, period: 'day', limitCredits: 100 })).body;
    const currentBudget = (await createBudget({ scope: { orgId: current }, period: 'week', limitCredits: 5 })).body;
    const open = (session: string, credits: number) =>
      ctx.db.transaction(async (tx) =>
        ctx.db.query<{ outcome: string }>(
          `SELECT (acct_session_open_locked($1, $2, $3, 1, NULL, NULL, $4::bigint, 0::bigint, 'h', 600, NULL,
                                            $5, l.budget_ids, l.limits, l.period_starts, l.used)).outcome
             FROM acct_budget_open_lock($2, $5, $3, now()) l`,
          [session, user.id, TEST_MODEL, micro(credits).toString(), stale],
          tx,
        ),
      );
    expect(await open('org-race-1', 6).then(() => 'created', (error) => pgErrorCode(error))).toBe('P0B01');
    expect(await open('org-race-2', 4)).toEqual([{ outcome: 'created' }]);
    expect(await counterOf(ctx.db, currentBudget.id)).toEqual({ spent: 0n, held: micro(4) });
    expect(await counterOf(ctx.db, staleBudget.id)).toEqual({ spent: 0n, held: 0n });
    expect(await count(ctx.db, 'budget_charges', 'session_id = $1 AND budget_id = $2::bigint', ['org-race-2', currentBudget.id])).toBe(1);
  });

  test('When a budget names a model, then only spend on that model counts and is refused', async () => {
    const user = await userWithCredits(100);
    const budget = (await createBudget({ scope: { userId: user.id }, period: 'day', limitCredits: 2, modelId: TEST_MODEL })).body;
    expect((await initialize(user.auth, { modelId: 'other-model', estimatedCredits: 50 })).status).toBe(201);
    expect((await initialize(user.auth, { estimatedCredits: 3 })).status).toBe(402);
    expect((await initialize(user.auth, { estimatedCredits: 2 })).status).toBe(201);
    expect(await counterOf(ctx.db, budget.id)).toEqual({ spent: 0n, held: micro(2) });
    // A check by credits alone names no model: the model's budget does not apply to it.
    expect((await api.post('/api/credits/check', user.auth, { credits: 1 })).body.sufficient).toBe(true);
    expect((await api.post('/api/credits/check', user.auth, { modelId: TEST_MODEL, inputTokens: 1000, outputTokens: 0 })).body.sufficient).toBe(false);
  });

  test('When a deleted budget had holds, then settling those sessions still works and leaves no counters behind', async () => {
    const user = await userWithCredits(100);
    const budget = (await createBudget({ scope: { userId: user.id }, period: 'day', limitCredits: 5 })).body;
    const s = await initialize(user.auth, { estimatedCredits: 4 });
    expect((await request(ctx.app).delete(`/api/budgets/${budget.id}`).set('Authorization', admin.auth)).status).toBe(204);
    expect(await count(ctx.db, 'budget_counters', 'budget_id = $1::bigint', [budget.id])).toBe(0);
    expect((await initialize(user.auth, { estimatedCredits: 50 })).status).toBe(201);
    const fin = await api.post('/api/streaming-sessions/finalize', user.auth, { sessionId: s.body.sessionId, actualInputTokens: 1000, actualOutputTokens: 0 });
    expect(fin.status).toBe(200);
  });

  test('When a refunded record\u2019s amount is taken back, then the spend of the period it counted in goes down, never below zero', async () => {
    const user = await userWithCredits(100);
    const budget = (await createBudget({ scope: { userId: user.id }, period: 'day', limitCredits: 5 })).body;
    const rec = await api.post('/api/usage/record', user.auth, { service: 'chat', operation: 'completion', credits: 4 });
    const recordId = rec.body.usageRecord.id as string;
    expect(await counterOf(ctx.db, budget.id)).toEqual({ spent: micro(4), held: 0n });
    expect((await api.post('/api/usage/record', user.auth, { service: 'chat', operation: 'completion', credits: 2 })).status).toBe(402);

    await ctx.db.transaction(async (tx) => {
      await ctx.db.query(`SELECT acct_budget_lock_record($1::bigint)`, [recordId], tx);
      await ctx.db.query(`SELECT acct_budget_refund_record($1::bigint, $2::bigint)`, [recordId, micro(3).toString()], tx);
    });
    expect(await counterOf(ctx.db, budget.id)).toEqual({ spent: micro(1), held: 0n });
    expect((await api.post('/api/usage/record', user.auth, { service: 'chat', operation: 'completion', credits: 2 })).status).toBe(201);
    await ctx.db.query(`SELECT acct_budget_refund_record($1::bigint, $2::bigint)`, [recordId, micro(50).toString()]);
    expect(await counterOf(ctx.db, budget.id)).toEqual({ spent: micro(2), held: 0n });
  });
});
