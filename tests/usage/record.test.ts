import request from 'supertest';
import { costAt } from '../../src/services/price.service';
import { createTestContext, type TestContext } from '../support/context';
import { availableOf, count, grantDirect, micro } from '../support/db';
import { userWithRole } from '../support/tokens';

let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext();
});
afterAll(() => ctx.close());

const post = (auth: string, body: object, key?: string) => {
  const req = request(ctx.app).post('/api/usage/record').set('Authorization', auth);
  if (key) req.set('Idempotency-Key', key);
  return req.send(body);
};

async function ledgerOf(usageRecordId: string) {
  return ctx.db.query<{ type: string; amount: string; allocation_id: string }>(
    `SELECT type, amount::text, allocation_id::text FROM credit_transactions WHERE usage_record_id = $1 ORDER BY id`,
    [usageRecordId],
  );
}

describe('POST /api/usage/record', () => {
  test('When credits are given and covered, then 201, the record is stored and charged, and the ledger links to it', async () => {
    const alice = userWithRole('user');
    await grantDirect(ctx.db, alice.id, 10);

    const res = await post(alice.auth, { service: 'search', operation: 'query', credits: 2.5, metadata: { q: 'cats' } });

    expect(res.status).toBe(201);
    expect(res.body).toEqual({
      usageRecord: {
        id: expect.any(String),
        userId: alice.id,
        sessionId: null,
        service: 'search',
        operation: 'query',
        modelId: null,
        priceVersion: null,
        inputTokens: 0,
        outputTokens: 0,
        cachedInputTokens: 0,
        cacheWriteTokens: 0,
        cacheWrite1hTokens: 0,
        reasoningTokens: 0,
        credits: 2.5,
        chargedCredits: 2.5,
        unpaidCredits: 0,
        refundedCredits: 0,
        metadata: { q: 'cats' },
        recordedBy: alice.id,
        createdAt: expect.any(String),
        occurredAt: expect.any(String),
        recordedAt: expect.any(String),
      },
      chargedCredits: 2.5,
      unpaidCredits: 0,
      availableCredits: 7.5,
    });
    expect(await availableOf(ctx.db, alice.id)).toBe(micro(7.5));
    const [row] = await ctx.db.query<{ credits: string; charged_credits: string; unpaid_credits: string; metadata: object }>(
      `SELECT credits::text, charged_credits::text, unpaid_credits::text, metadata FROM usage_records WHERE id = $1`,
      [res.body.usageRecord.id],
    );
    expect(row).toEqual({ credits: '2500000', charged_credits: '2500000', unpaid_credits: '0', metadata: { q: 'cats' } });
    expect(await ledgerOf(res.body.usageRecord.id)).toEqual([{ type: 'charge', amount: '2500000', allocation_id: expect.any(String) }]);
  });

  test('When model and tokens are given, then credits are the cost at the current price, rounded up', async () => {
    const bob = userWithRole('user');
    await grantDirect(ctx.db, bob.id, 100);
    const price = await ctx.services.prices.current('gpt-4o');
    const expected = costAt(price, { inputTokens: 1234, outputTokens: 567, cachedInputTokens: 200 }).total;

    const res = await post(bob.auth, {
      service: 'chat',
      operation: 'completion',
      modelId: 'gpt-4o',
      inputTokens: 1234,
      outputTokens: 567,
      cachedInputTokens: 200,
    });

    expect(res.status).toBe(201);
    expect(micro(res.body.usageRecord.credits)).toBe(expected);
    expect(res.body.usageRecord).toMatchObject({ modelId: 'gpt-4o', priceVersion: price.priceVersion, inputTokens: 1234, outputTokens: 567, cachedInputTokens: 200 });
    expect(micro(res.body.chargedCredits)).toBe(expected);
    expect(await availableOf(ctx.db, bob.id)).toBe(micro(100) - expected);
  });

  test('When the credits fall short, then the usage is still recorded, the shortfall is unpaid and the balance is 0, never negative', async () => {
    const carol = userWithRole('user');
    await grantDirect(ctx.db, carol.id, 3);

    const res = await post(carol.auth, { service: 'images', operation: 'generate', credits: 5 });

    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ chargedCredits: 3, unpaidCredits: 2, availableCredits: 0 });
    expect(res.body.usageRecord).toMatchObject({ credits: 5, chargedCredits: 3, unpaidCredits: 2 });
    expect(await availableOf(ctx.db, carol.id)).toBe(0n);
    expect(await count(ctx.db, 'credit_allocations', 'user_id = $1 AND remaining_credits < 0', [carol.id])).toBe(0);

    const again = await post(carol.auth, { service: 'images', operation: 'generate', credits: 1 });
    expect(again.status).toBe(201);
    expect(again.body).toMatchObject({ chargedCredits: 0, unpaidCredits: 1, availableCredits: 0 });
    expect(await ledgerOf(again.body.usageRecord.id)).toEqual([]);
    const [daily] = await ctx.db.query<{ requests: string; credits: string; unpaid_credits: string }>(
      `SELECT requests::text, credits::text, unpaid_credits::text FROM usage_daily WHERE user_id = $1`,
      [carol.id],
    );
    expect(daily).toEqual({ requests: '2', credits: '6000000', unpaid_credits: '3000000' });
  });

  test('When several lots exist, then the charge takes the soonest-expiring lot first and writes one ledger row per lot', async () => {
    const dan = userWithRole('user');
    const never = await grantDirect(ctx.db, dan.id, 5);
    const soon = await grantDirect(ctx.db, dan.id, 2, new Date(Date.now() + 3600_000));

    const res = await post(dan.auth, { service: 'chat', operation: 'completion', credits: 3 });

    expect(res.status).toBe(201);
    expect(await ledgerOf(res.body.usageRecord.id)).toEqual([
      { type: 'charge', amount: '2000000', allocation_id: soon },
      { type: 'charge', amount: '1000000', allocation_id: never },
    ]);
  });

  test('When the model has no price, then 400 UNKNOWN_MODEL and nothing is recorded', async () => {
    const erin = userWithRole('user');
    const res = await post(erin.auth, { service: 'chat', operation: 'completion', modelId: 'no-such-model', inputTokens: 1, outputTokens: 1 });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('UNKNOWN_MODEL');
    expect(await count(ctx.db, 'usage_records', 'user_id = $1', [erin.id])).toBe(0);
  });

  const bigMetadata = { blob: 'x'.repeat(4100) };
  const manyKeys = Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`k${i}`, i]));
  const invalid: Array<[string, object, string]> = [
    ['the service is missing', { operation: 'query', credits: 1 }, 'service'],
    ['the operation is missing', { service: 'search', credits: 1 }, 'operation'],
    ['credits and tokens are both given', { service: 'chat', operation: 'c', credits: 1, modelId: 'gpt-4o', inputTokens: 1, outputTokens: 1 }, 'credits'],
    ['neither credits nor tokens are given', { service: 'chat', operation: 'c' }, 'credits'],
    ['tokens are given without a model', { service: 'chat', operation: 'c', inputTokens: 1, outputTokens: 1 }, 'modelId'],
    ['a model is given without output tokens', { service: 'chat', operation: 'c', modelId: 'gpt-4o', inputTokens: 1 }, 'outputTokens'],
    ['input tokens are negative', { service: 'chat', operation: 'c', modelId: 'gpt-4o', inputTokens: -1, outputTokens: 1 }, 'inputTokens'],
    ['output tokens are fractional', { service: 'chat', operation: 'c', modelId: 'gpt-4o', inputTokens: 1, outputTokens: 1.5 }, 'outputTokens'],
    ['cached tokens exceed input tokens', { service: 'chat', operation: 'c', modelId: 'gpt-4o', inputTokens: 1, outputTokens: 1, cachedInputTokens: 2 }, 'cachedInputTokens'],
    ['credits are negative', { service: 'chat', operation: 'c', credits: -1 }, 'credits'],
    ['credits have 7 decimals', { service: 'chat', operation: 'c', credits: '0.0000001' }, 'credits'],
    ['metadata is over 4096 bytes', { service: 'chat', operation: 'c', credits: 1, metadata: bigMetadata }, 'metadata'],
    ['metadata has over 50 keys', { service: 'chat', operation: 'c', credits: 1, metadata: manyKeys }, 'metadata'],
    ['metadata is an array', { service: 'chat', operation: 'c', credits: 1, metadata: [1, 2] }, 'metadata'],
    ['the service has a comma', { service: 'a,b', operation: 'c', credits: 1 }, 'service'],
    ['an unknown field is sent', { service: 'chat', operation: 'c', credits: 1, remainingCredits: 5 }, 'remainingCredits'],
  ];

  test.each(invalid)('When %s, then 400 VALIDATION_ERROR naming it and nothing is recorded or charged', async (_name, body, path) => {
    const frank = userWithRole('user');
    await grantDirect(ctx.db, frank.id, 10);

    const res = await post(frank.auth, body);

    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('VALIDATION_ERROR');
    expect(res.body.error.details.problems).toEqual(expect.arrayContaining([expect.objectContaining({ location: 'body', path })]));
    expect(await count(ctx.db, 'usage_records', 'user_id = $1', [frank.id])).toBe(0);
    expect(await count(ctx.db, 'usage_daily', 'user_id = $1', [frank.id])).toBe(0);
    expect(await availableOf(ctx.db, frank.id)).toBe(micro(10));
  });

  test('When metadata is exactly at the limits, then it is accepted', async () => {
    const gina = userWithRole('user');
    const fifty = Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`k${i}`, i]));
    const res = await post(gina.auth, { service: 'chat', operation: 'c', credits: 0, metadata: fifty });
    expect(res.status).toBe(201);
    const base = JSON.stringify({ blob: '' }).length;
    const exact = await post(gina.auth, { service: 'chat', operation: 'c', credits: 0, metadata: { blob: 'y'.repeat(4096 - base) } });
    expect(exact.status).toBe(201);
  });
});

describe('recording for another user', () => {
  test('When a user names someone else, then 403 FORBIDDEN and nothing is recorded', async () => {
    const mallory = userWithRole('user');
    const victim = userWithRole('user');
    await grantDirect(ctx.db, victim.id, 10);

    const res = await post(mallory.auth, { service: 'chat', operation: 'c', credits: 1, userId: victim.id });

    expect(res.status).toBe(403);
    expect(res.body.error.code).toBe('FORBIDDEN');
    expect(await count(ctx.db, 'usage_records', 'user_id = $1', [victim.id])).toBe(0);
    expect(await availableOf(ctx.db, victim.id)).toBe(micro(10));
  });

  test('When a user names themselves, then it is recorded for them', async () => {
    const hank = userWithRole('user');
    const res = await post(hank.auth, { service: 'chat', operation: 'c', credits: 1, userId: hank.id });
    expect(res.status).toBe(201);
    expect(res.body.usageRecord.userId).toBe(hank.id);
  });

  test('When a supervisor records for a user, then the user is charged and the supervisor is the recorder', async () => {
    const supervisor = userWithRole('supervisor');
    const ivy = userWithRole('user');
    await grantDirect(ctx.db, ivy.id, 4);

    const res = await post(supervisor.auth, { service: 'chat', operation: 'c', credits: 1.25, userId: ivy.id });

    expect(res.status).toBe(201);
    expect(res.body.usageRecord).toMatchObject({ userId: ivy.id, recordedBy: supervisor.id, chargedCredits: 1.25 });
    expect(res.body.availableCredits).toBe(2.75);
    expect(await availableOf(ctx.db, ivy.id)).toBe(micro(2.75));
    const [ledger] = await ledgerOf(res.body.usageRecord.id);
    expect(ledger.type).toBe('charge');
    const [actor] = await ctx.db.query<{ actor_id: string }>(`SELECT actor_id FROM credit_transactions WHERE usage_record_id = $1`, [res.body.usageRecord.id]);
    expect(actor.actor_id).toBe(supervisor.id);
  });

  test('When an admin records for a user never seen, then the user is created and the whole cost is unpaid', async () => {
    const admin = userWithRole('admin');
    const newcomer = `new-${Date.now()}`;

    const res = await post(admin.auth, { service: 'chat', operation: 'c', credits: 2, userId: newcomer });

    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ chargedCredits: 0, unpaidCredits: 2, availableCredits: 0 });
    expect(await count(ctx.db, 'user_accounts', 'id = $1', [newcomer])).toBe(1);
    expect(await count(ctx.db, 'usage_records', 'user_id = $1', [newcomer])).toBe(1);
  });
});

describe('idempotent recording', () => {
  test('When 10 identical posts with one Idempotency-Key arrive at once, then one record and one charge exist and all get the same answer', async () => {
    const jack = userWithRole('user');
    await grantDirect(ctx.db, jack.id, 100);
    const body = { service: 'chat', operation: 'completion', modelId: 'gpt-4o-mini', inputTokens: 1000, outputTokens: 500 };
    const server = ctx.app.listen(0);
    try {
      const responses = await Promise.all(
        Array.from({ length: 10 }, () =>
          request(server).post('/api/usage/record').set('Authorization', jack.auth).set('Idempotency-Key', 'same-key-1').send(body),
        ),
      );

      expect(responses.map((r) => r.status)).toEqual(Array(10).fill(201));
      const ids = new Set(responses.map((r) => r.body.usageRecord.id));
      expect(ids.size).toBe(1);
      expect(responses.filter((r) => r.headers['idempotent-replayed'] === 'true')).toHaveLength(9);
      for (const r of responses) expect(r.body).toEqual(responses[0].body);
    } finally {
      server.close();
    }
    expect(await count(ctx.db, 'usage_records', 'user_id = $1', [jack.id])).toBe(1);
    expect(await count(ctx.db, 'credit_transactions', `user_id = $1 AND type = 'charge'`, [jack.id])).toBe(1);
    const [daily] = await ctx.db.query<{ requests: string }>(`SELECT requests::text FROM usage_daily WHERE user_id = $1`, [jack.id]);
    expect(daily.requests).toBe('1');
  });

  test('When the same key comes with a different body, then 422 IDEMPOTENCY_KEY_REUSED and nothing more is recorded', async () => {
    const kate = userWithRole('user');
    const first = await post(kate.auth, { service: 'chat', operation: 'c', credits: 1 }, 'k-1');
    expect(first.status).toBe(201);

    const second = await post(kate.auth, { service: 'chat', operation: 'c', credits: 2 }, 'k-1');

    expect(second.status).toBe(422);
    expect(second.body.error.code).toBe('IDEMPOTENCY_KEY_REUSED');
    expect(await count(ctx.db, 'usage_records', 'user_id = $1', [kate.id])).toBe(1);
  });

  test('When posts without a key repeat, then each is a separate record', async () => {
    const liam = userWithRole('user');
    await post(liam.auth, { service: 'chat', operation: 'c', credits: 1 });
    await post(liam.auth, { service: 'chat', operation: 'c', credits: 1 });
    expect(await count(ctx.db, 'usage_records', 'user_id = $1', [liam.id])).toBe(2);
  });
});

describe('concurrent charges for one user', () => {
  test('When 20 records race against a balance of 10, then exactly 10 credits are charged and the rest is unpaid', async () => {
    const mia = userWithRole('user');
    await grantDirect(ctx.db, mia.id, 10);
    const server = ctx.app.listen(0);
    let responses: request.Response[];
    try {
      responses = await Promise.all(
        Array.from({ length: 20 }, () => request(server).post('/api/usage/record').set('Authorization', mia.auth).send({ service: 'chat', operation: 'c', credits: 1 })),
      );
    } finally {
      server.close();
    }
    expect(responses.map((r) => r.status)).toEqual(Array(20).fill(201));
    const charged = responses.reduce((sum, r) => sum + micro(r.body.chargedCredits), 0n);
    const unpaid = responses.reduce((sum, r) => sum + micro(r.body.unpaidCredits), 0n);
    expect(charged).toBe(micro(10));
    expect(unpaid).toBe(micro(10));
    expect(await availableOf(ctx.db, mia.id)).toBe(0n);
    const [sums] = await ctx.db.query<{ charged: string; unpaid: string }>(
      `SELECT sum(charged_credits)::text AS charged, sum(unpaid_credits)::text AS unpaid FROM usage_records WHERE user_id = $1`,
      [mia.id],
    );
    expect(sums).toEqual({ charged: '10000000', unpaid: '10000000' });
  });
});
