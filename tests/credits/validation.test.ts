import request from 'supertest';
import { createTestContext, type TestContext } from '../support/context';
import { count } from '../support/db';
import { userWithRole } from '../support/tokens';

let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext();
});
afterAll(() => ctx.close());

const supervisor = userWithRole('supervisor');
const TARGET = 'validation-target';

/** Everything an allocate could have written. */
async function stored() {
  return {
    users: await count(ctx.db, 'user_accounts', 'id = $1', [TARGET]),
    lots: await count(ctx.db, 'credit_allocations'),
    entries: await count(ctx.db, 'credit_transactions'),
    keys: await count(ctx.db, 'idempotency_keys'),
  };
}

const past = new Date(Date.now() - 60_000).toISOString();
const future = new Date(Date.now() + 86_400_000).toISOString();

describe('POST /api/credits/allocate with bad input', () => {
  test.each([
    ['credits 0', { credits: 0 }, 'credits'],
    ['negative credits', { credits: -5 }, 'credits'],
    ['negative credits as a string', { credits: '-0.000001' }, 'credits'],
    ['credits above 1,000,000,000', { credits: 1_000_000_000.000001 }, 'credits'],
    ['credits above 1,000,000,000 as a string', { credits: '1000000001' }, 'credits'],
    ['seven decimals', { credits: '1.0000001' }, 'credits'],
    ['seven decimals as a number', { credits: 0.0000001 }, 'credits'],
    ['"abc"', { credits: 'abc' }, 'credits'],
    ['null credits', { credits: null }, 'credits'],
    ['missing credits', {}, 'credits'],
    ['credits as an array', { credits: [1] }, 'credits'],
    ['expiresAt in the past', { credits: 1, expiresAt: past }, 'expiresAt'],
    ['expiresAt that is not a date', { credits: 1, expiresAt: 'tomorrow' }, 'expiresAt'],
    ['both expiresAt and expiresInDays', { credits: 1, expiresAt: future, expiresInDays: 3 }, 'expiresInDays'],
    ['expiresInDays 0', { credits: 1, expiresInDays: 0 }, 'expiresInDays'],
    ['expiresInDays 1.5', { credits: 1, expiresInDays: 1.5 }, 'expiresInDays'],
    ['remainingCredits', { credits: 1, remainingCredits: 1_000_000 }, 'remainingCredits'],
    ['allocatedBy', { credits: 1, allocatedBy: 'someone-else' }, 'allocatedBy'],
    ['totalCredits', { credits: 1, totalCredits: 5 }, 'totalCredits'],
  ])('When the body has %s, then 400 VALIDATION_ERROR naming the field and nothing is stored', async (_name, fields, path) => {
    const before = await stored();

    const res = await request(ctx.app)
      .post('/api/credits/allocate')
      .set('Authorization', supervisor.auth)
      .set('Idempotency-Key', `bad-${_name}`)
      .send({ userId: TARGET, ...fields });

    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('VALIDATION_ERROR');
    expect(res.body.error.details.problems).toEqual(expect.arrayContaining([expect.objectContaining({ location: 'body', path })]));
    expect(await stored()).toEqual(before);
  });

  test('When credits is 1e309 in the raw JSON (Infinity once parsed), then 400 and nothing is stored', async () => {
    const before = await stored();

    const res = await request(ctx.app)
      .post('/api/credits/allocate')
      .set('Authorization', supervisor.auth)
      .set('Content-Type', 'application/json')
      .send(`{"userId":"${TARGET}","credits":1e309}`);

    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('VALIDATION_ERROR');
    expect(await stored()).toEqual(before);
  });

  test('When several fields are wrong, then every problem is listed at once', async () => {
    const res = await request(ctx.app)
      .post('/api/credits/allocate')
      .set('Authorization', supervisor.auth)
      .send({ userId: '', credits: 'abc', expiresAt: past, allocatedBy: 'x' });

    expect(res.status).toBe(400);
    const paths = res.body.error.details.problems.map((p: { path: string }) => p.path);
    expect(paths).toEqual(expect.arrayContaining(['userId', 'credits', 'expiresAt']));
  });

  test('When the Idempotency-Key header is too long, then 400 and nothing is stored', async () => {
    const before = await stored();
    const res = await request(ctx.app)
      .post('/api/credits/allocate')
      .set('Authorization', supervisor.auth)
      .set('Idempotency-Key', 'k'.repeat(256))
      .send({ userId: TARGET, credits: 1 });
    expect(res.status).toBe(400);
    expect(await stored()).toEqual(before);
  });

  test('When the largest allowed amount with six decimals is allocated, then it is stored exactly', async () => {
    const res = await request(ctx.app)
      .post('/api/credits/allocate')
      .set('Authorization', supervisor.auth)
      .send({ userId: 'validation-max', credits: '999999999.999999' });

    expect(res.status).toBe(201);
    expect(res.body.allocation.totalCredits).toBe(999999999.999999);
    const [lot] = await ctx.db.query<{ total_credits: string }>(`SELECT total_credits FROM credit_allocations WHERE user_id = 'validation-max'`);
    expect(lot.total_credits).toBe('999999999999999');
  });
});

describe('POST /api/credits/check and /calculate with bad input', () => {
  test.each([
    ['/api/credits/check', { credits: -1 }],
    ['/api/credits/check', { credits: '1.1234567' }],
    ['/api/credits/check', { credits: null }],
    ['/api/credits/calculate', { modelId: 'gpt-4o', inputTokens: -1, outputTokens: 0 }],
    ['/api/credits/calculate', { modelId: 'gpt-4o', inputTokens: 1.5, outputTokens: 0 }],
    ['/api/credits/calculate', { modelId: 'gpt-4o', inputTokens: '10', outputTokens: 0 }],
    ['/api/credits/calculate', { modelId: '', inputTokens: 1, outputTokens: 0 }],
    ['/api/credits/calculate', { modelId: 'm'.repeat(256), inputTokens: 1, outputTokens: 0 }],
  ])('When %s gets %p, then 400 VALIDATION_ERROR', async (path, body) => {
    const res = await request(ctx.app).post(path).set('Authorization', userWithRole('user').auth).send(body);
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('VALIDATION_ERROR');
  });
});
