import request from 'supertest';
import { createTestContext, type TestContext } from '../support/context';
import { grantDirect } from '../support/db';
import { userWithRole } from '../support/tokens';
import { rollupMismatches } from '../usage/helpers';

let ctx: TestContext;
const admin = userWithRole('admin');
const DAY = 86_400_000;
const MODEL = 'late-model';

beforeAll(async () => {
  ctx = await createTestContext();
  // Version 1 from 20 days ago, version 2 from 3 days ago (moved back in time directly: PUT only schedules forward).
  await request(ctx.app).put(`/api/models/${MODEL}`).set('Authorization', admin.auth).send({ inputPricePer1M: 1000, outputPricePer1M: 1000 });
  await request(ctx.app).put(`/api/models/${MODEL}`).set('Authorization', admin.auth).send({ inputPricePer1M: 4000, outputPricePer1M: 4000 });
  await ctx.db.query(
    `UPDATE model_prices SET effective_from = now() - CASE price_version WHEN 1 THEN interval '20 days' ELSE interval '3 days' END
      WHERE model_id = $1 RETURNING 1`,
    [MODEL],
  );
});
afterAll(() => ctx.close());
afterEach(async () => {
  const res = await request(ctx.app).get('/api/admin/reconcile').set('Authorization', admin.auth);
  expect(res.body).toMatchObject({ ok: true, discrepancies: [] });
  expect(Object.values(await rollupMismatches(ctx.db)).every((n) => n === 0)).toBe(true);
});

const record = (auth: string, body: object) => request(ctx.app).post('/api/usage/record').set('Authorization', auth).send({ service: 'chat', operation: 'c', ...body });
const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);

describe('late usage events (occurredAt)', () => {
  test('When usage that happened 10 days ago is recorded now, then it is priced at the version in effect then and counted on that day', async () => {
    const user = userWithRole('user');
    await grantDirect(ctx.db, user.id, 100);
    const occurredAt = new Date(Date.now() - 10 * DAY).toISOString();
    const res = await record(user.auth, { modelId: MODEL, inputTokens: 1000, outputTokens: 0, occurredAt });
    expect(res.status).toBe(201);
    expect(res.body.usageRecord).toMatchObject({ priceVersion: 1, credits: 1, occurredAt, createdAt: occurredAt });
    expect(Date.parse(res.body.usageRecord.recordedAt)).toBeGreaterThan(Date.parse(occurredAt));

    const now = await record(user.auth, { modelId: MODEL, inputTokens: 1000, outputTokens: 0 });
    expect(now.body.usageRecord).toMatchObject({ priceVersion: 2, credits: 4 });

    const stats = await request(ctx.app).get('/api/usage/stats').set('Authorization', user.auth);
    const daily = new Map((stats.body.daily as { date: string; credits: number }[]).map((d) => [d.date, d.credits]));
    expect(daily.get(day(Date.parse(occurredAt)))).toBe(1);
    expect(daily.get(day(Date.now()))).toBe(4);

    const system = await request(ctx.app)
      .get('/api/usage/system-stats')
      .query({ from: day(Date.parse(occurredAt)), to: day(Date.parse(occurredAt)) })
      .set('Authorization', admin.auth);
    expect(system.body.byModel.find((m: { modelId: string }) => m.modelId === MODEL)).toMatchObject({ requests: 1, credits: 1 });
  });

  test('When a late event is older than the model\u2019s first version, then it is priced at that first version', async () => {
    const user = userWithRole('user');
    const res = await record(user.auth, { modelId: MODEL, inputTokens: 1000, outputTokens: 0, occurredAt: new Date(Date.now() - 30 * DAY).toISOString() });
    expect(res.status).toBe(201);
    expect(res.body.usageRecord).toMatchObject({ priceVersion: 1, credits: 1, unpaidCredits: 1 });
  });

  test.each([
    ['36 days ago', -36 * DAY],
    ['10 minutes ahead', 10 * 60_000],
  ])('When occurredAt is %s, then 400 naming occurredAt and nothing is recorded', async (_name, offset) => {
    const user = userWithRole('user');
    const res = await record(user.auth, { credits: 1, occurredAt: new Date(Date.now() + offset).toISOString() });
    expect(res.status).toBe(400);
    expect(res.body.error.details.problems[0].path).toBe('occurredAt');
    const [row] = await ctx.db.query<{ n: string }>(`SELECT count(*)::text AS n FROM usage_records WHERE user_id = $1`, [user.id]);
    expect(row.n).toBe('0');
  });

  test('When occurredAt is a minute ahead (clock skew), then it is accepted', async () => {
    const user = userWithRole('user');
    const res = await record(user.auth, { credits: 1, occurredAt: new Date(Date.now() + 60_000).toISOString() });
    expect(res.status).toBe(201);
  });
});
