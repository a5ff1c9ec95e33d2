import request from 'supertest';
import { createTestContext, type TestContext } from '../support/context';
import { availableOf, micro } from '../support/db';
import { userWithRole } from '../support/tokens';
import { allocate, discrepancies } from '../credits/helpers';
import { post, recordState, recordUsage } from './helpers';

let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext();
});
afterAll(() => ctx.close());

const admin = userWithRole('admin');
const supervisor = userWithRole('supervisor');

const setPrice = (modelId: string, input: number, output: number) =>
  request(ctx.app).put(`/api/models/${modelId}`).set('Authorization', admin.auth).send({ inputPricePer1M: input, outputPricePer1M: output, cachedInputPricePer1M: input });

const rerate = (body: Record<string, unknown>, auth = admin.auth, key?: string) => post(ctx, auth, '/api/admin/rerate', body, key);

const range = { from: '2020-01-01T00:00:00Z', to: '2100-01-01T00:00:00Z' };

test('When a version is re-rated up and then down, then each difference is charged or refunded once, a second run changes nothing, and reconcile is clean', async () => {
  const model = `rr-${Date.now()}`;
  expect((await setPrice(model, 1, 2)).status).toBeLessThan(300); // v1: 3 credits per (1M in + 1M out)
  const user = userWithRole('user');
  await allocate(ctx, supervisor.auth, { userId: user.id, credits: 10 });
  const tokens = { modelId: model, inputTokens: 1_000_000, outputTokens: 1_000_000 };
  const one = (await recordUsage(ctx, supervisor.auth, { userId: user.id, ...tokens })).body.usageRecord;
  const two = (await recordUsage(ctx, supervisor.auth, { userId: user.id, ...tokens })).body.usageRecord;
  expect([one.credits, one.priceVersion]).toEqual([3, 1]);
  await setPrice(model, 2, 4); // v2: 6 credits

  const dry = await rerate({ modelId: model, fromPriceVersion: 1, toPriceVersion: 2, ...range, dryRun: true });
  expect(dry.status).toBe(200);
  expect(dry.body).toEqual({ records: 2, creditsCharged: 6, creditsRefunded: 0, dryRun: true });
  expect(await recordState(ctx, one.id)).toMatchObject({ credits: micro(3) });

  const up = await rerate({ modelId: model, fromPriceVersion: 1, toPriceVersion: 2, ...range }, admin.auth, 'rr-1');
  expect(up.body).toEqual({ records: 2, creditsCharged: 6, creditsRefunded: 0, dryRun: false });
  // 4 credits were left: the first record's +3 is charged, the second's +3 is 1 charged and 2 unpaid.
  expect(await recordState(ctx, one.id)).toEqual({ credits: micro(6), charged: micro(6), unpaid: 0n, refunded: 0n });
  expect(await recordState(ctx, two.id)).toEqual({ credits: micro(6), charged: micro(4), unpaid: micro(2), refunded: 0n });
  expect(await availableOf(ctx.db, user.id)).toBe(0n);

  const replay = await rerate({ modelId: model, fromPriceVersion: 1, toPriceVersion: 2, ...range }, admin.auth, 'rr-1');
  expect(replay.headers['idempotent-replayed']).toBe('true');
  expect(replay.body).toEqual(up.body);
  const again = await rerate({ modelId: model, fromPriceVersion: 1, toPriceVersion: 2, ...range });
  expect(again.body).toEqual({ records: 0, creditsCharged: 0, creditsRefunded: 0, dryRun: false });
  expect(await availableOf(ctx.db, user.id)).toBe(0n);

  await setPrice(model, 0.5, 0.5); // v3: 1 credit
  const down = await rerate({ modelId: model, fromPriceVersion: 2, toPriceVersion: 3, ...range });
  expect(down.body).toEqual({ records: 2, creditsCharged: 0, creditsRefunded: 10, dryRun: false });
  expect(await recordState(ctx, one.id)).toEqual({ credits: micro(1), charged: micro(1), unpaid: 0n, refunded: 0n });
  // Unpaid goes first: 2 forgiven, 3 returned.
  expect(await recordState(ctx, two.id)).toEqual({ credits: micro(1), charged: micro(1), unpaid: 0n, refunded: 0n });
  expect(await availableOf(ctx.db, user.id)).toBe(micro(8));
  const stats = await request(ctx.app).get(`/api/usage/stats/${user.id}`).set('Authorization', admin.auth);
  expect(stats.body.totals).toMatchObject({ requests: 2, credits: 2, unpaidCredits: 0 });
  const [row] = await ctx.db.query<{ price_version: number }>(`SELECT price_version FROM usage_records WHERE id = $1`, [one.id]);
  expect(row.price_version).toBe(3);
  expect(await discrepancies(ctx)).toEqual([]);
});

test('When the request is invalid or the caller not an admin, then 400 / 403 and nothing changes', async () => {
  const model = `rr-bad-${Date.now()}`;
  await setPrice(model, 1, 1);
  const bad = [
    { modelId: model, fromPriceVersion: 1, toPriceVersion: 9, ...range },
    { modelId: model, fromPriceVersion: 1, toPriceVersion: 1, ...range },
    { modelId: model, fromPriceVersion: 1, toPriceVersion: 2, from: range.to, to: range.from },
    { modelId: model, fromPriceVersion: 0, toPriceVersion: 2, ...range },
    { modelId: model, fromPriceVersion: 1, toPriceVersion: 2 },
  ];
  for (const body of bad) {
    const res = await rerate(body);
    expect({ body, status: res.status, code: res.body.error?.code }).toEqual({ body, status: 400, code: 'VALIDATION_ERROR' });
  }
  expect((await rerate({ modelId: model, fromPriceVersion: 1, toPriceVersion: 2, ...range }, supervisor.auth)).status).toBe(403);
});

test('When three re-rates of the same range race over more records than one batch, then every record is re-rated exactly once', async () => {
  const model = `rr-race-${Date.now()}`;
  await setPrice(model, 1, 1); // v1: 1 credit per 1M tokens
  const users = [userWithRole('user'), userWithRole('user'), userWithRole('user')];
  const counts = [450, 20, 20];
  for (const [i, user] of users.entries()) {
    await allocate(ctx, supervisor.auth, { userId: user.id, credits: 10_000 });
    await ctx.db.query(
      `SELECT acct_record_charged_usage($1, 'chat', 'c', $2, 1, 1000000, 0, 0, 1000000, NULL, 'test') FROM generate_series(1, $3::int)`,
      [user.id, model, counts[i]],
    );
  }
  await setPrice(model, 3, 3); // v2: 3 credits
  const body = { modelId: model, fromPriceVersion: 1, toPriceVersion: 2, ...range };
  const results = await Promise.all([rerate(body), rerate(body), rerate(body)]);
  expect(results.map((r) => r.status)).toEqual([200, 200, 200]);
  expect(results.reduce((sum, r) => sum + r.body.records, 0)).toBe(490);
  expect(results.reduce((sum, r) => sum + r.body.creditsCharged, 0)).toBe(980);
  for (const [i, user] of users.entries()) expect(await availableOf(ctx.db, user.id)).toBe(micro(10_000 - 3 * counts[i]));
  const [left] = await ctx.db.query<{ n: string }>(`SELECT count(*)::text AS n FROM usage_records WHERE model_id = $1 AND price_version = 1`, [model]);
  expect(left.n).toBe('0');
  expect(await discrepancies(ctx)).toEqual([]);
}, 120_000);

test('When records with every token kind are re-rated, then the new cost is what calculate (costAt) gives at that version, kind fallbacks included', async () => {
  const model = `rr-kinds-${Date.now()}`;
  await setPrice(model, 1, 1); // v1: every kind 1 credit per 1M (kinds without a price fall back)
  const user = userWithRole('user');
  await allocate(ctx, supervisor.auth, { userId: user.id, credits: 100 });
  const tokens = {
    inputTokens: 1_000_000,
    cachedInputTokens: 100_000,
    cacheWriteTokens: 200_000,
    cacheWrite1hTokens: 300_000,
    outputTokens: 1_000_000,
    reasoningTokens: 400_000,
  };
  const rec = await recordUsage(ctx, supervisor.auth, { userId: user.id, modelId: model, ...tokens });
  expect(rec.status).toBe(201);
  expect(rec.body.usageRecord.credits).toBe(2);
  const calculate = async () => {
    const res = await request(ctx.app).post('/api/credits/calculate').set('Authorization', admin.auth).send({ modelId: model, ...tokens });
    expect(res.status).toBe(200);
    return res.body.credits as number;
  };

  // v2: every kind its own price. 0.4M x 2 + 0.1M x 0.5 + 0.2M x 3 + 0.3M x 5 + 0.6M x 7 + 0.4M x 11 = 11.55
  const v2 = await request(ctx.app).put(`/api/models/${model}`).set('Authorization', admin.auth).send({
    inputPricePer1M: 2, cachedInputPricePer1M: 0.5, cacheWritePricePer1M: 3, cacheWrite1hPricePer1M: 5, outputPricePer1M: 7, reasoningPricePer1M: 11,
  });
  expect(v2.status).toBe(200);
  expect(await calculate()).toBe(11.55);
  const body = { modelId: model, fromPriceVersion: 1, toPriceVersion: 2, ...range };
  expect((await rerate({ ...body, dryRun: true })).body).toEqual({ records: 1, creditsCharged: 9.55, creditsRefunded: 0, dryRun: true });
  expect((await rerate(body)).body).toEqual({ records: 1, creditsCharged: 9.55, creditsRefunded: 0, dryRun: false });
  expect(await recordState(ctx, rec.body.usageRecord.id)).toMatchObject({ credits: micro(11.55), charged: micro(11.55) });

  // v3: only input, cached input and output priced: cache writes fall back to input, reasoning to output.
  await setPrice(model, 1, 2);
  const expected = await calculate();
  expect(expected).toBe(3); // 0.4 + 0.1 + 0.2 + 0.3 + 0.6 x 2 + 0.4 x 2
  expect((await rerate({ modelId: model, fromPriceVersion: 2, toPriceVersion: 3, ...range })).body).toEqual({
    records: 1, creditsCharged: 0, creditsRefunded: 8.55, dryRun: false,
  });
  expect(await recordState(ctx, rec.body.usageRecord.id)).toMatchObject({ credits: micro(expected) });
  expect(await availableOf(ctx.db, user.id)).toBe(micro(97));
  expect(await discrepancies(ctx)).toEqual([]);
});

test('When one re-rate raises some records and lowers others while credits are short, then every lot and record adds up and reconcile is clean', async () => {
  const model = `rr-mixed-${Date.now()}`;
  await setPrice(model, 1, 1); // v1: 1 credit per 1M tokens of either kind
  const user = userWithRole('user');
  await allocate(ctx, supervisor.auth, { userId: user.id, credits: 30 });
  await allocate(ctx, supervisor.auth, { userId: user.id, credits: 3, expiresInDays: 2 });
  // 24 records alternating input-heavy (2M in) and output-heavy (2M out): 2 credits each at v1, 48 in all:
  // 33 charged, 15 unpaid.
  for (let i = 0; i < 24; i++) {
    const tokens = i % 2 === 0 ? { inputTokens: 2_000_000, outputTokens: 0 } : { inputTokens: 0, outputTokens: 2_000_000 };
    expect((await recordUsage(ctx, supervisor.auth, { userId: user.id, modelId: model, ...tokens })).status).toBe(201);
  }
  await setPrice(model, 3, 0.25); // v2: input-heavy records cost 6 (+4), output-heavy 0.5 (-1.5)
  const res = await rerate({ modelId: model, fromPriceVersion: 1, toPriceVersion: 2, ...range });
  expect(res.body).toEqual({ records: 24, creditsCharged: 48, creditsRefunded: 18, dryRun: false });
  const rows = await ctx.db.query<{ credits: string; charged: string; unpaid: string }>(
    `SELECT credits::text, charged_credits::text AS charged, unpaid_credits::text AS unpaid FROM usage_records WHERE model_id = $1`,
    [model],
  );
  const sum = (key: 'credits' | 'charged' | 'unpaid') => rows.reduce((s, r) => s + BigInt(r[key]), 0n);
  expect(sum('credits')).toBe(micro(12 * 6 + 12 * 0.5));
  expect(sum('charged') + sum('unpaid')).toBe(sum('credits'));
  // Every credit granted is either still available or paid a record.
  expect((await availableOf(ctx.db, user.id)) + sum('charged')).toBe(micro(33));
  expect(await discrepancies(ctx)).toEqual([]);
});
