import request from 'supertest';
import { createTestContext, type TestContext } from '../support/context';
import { micro } from '../support/db';
import { userWithRole } from '../support/tokens';

let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext();
});
afterAll(() => ctx.close());

const supervisor = userWithRole('supervisor');

async function counter(name: string): Promise<number> {
  const text = (await request(ctx.app).get('/metrics')).text;
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  if (line === undefined) throw new Error(`metric ${name} not exposed`);
  return Number(line.split(' ')[1]);
}

describe('business counters', () => {
  test('When credits are allocated, then credits granted grows by the amount, once per Idempotency-Key', async () => {
    const user = userWithRole('user');
    const before = await counter('accounting_credits_granted_total');

    const send = () =>
      request(ctx.app)
        .post('/api/credits/allocate')
        .set('Authorization', supervisor.auth)
        .set('Idempotency-Key', `metrics-${user.id}`)
        .send({ userId: user.id, credits: 12.5 });
    const first = await send();
    const replay = await send();

    expect(first.status).toBe(201);
    expect(replay.headers['idempotent-replayed']).toBe('true');
    expect((await counter('accounting_credits_granted_total')) - before).toBeCloseTo(12.5, 6);
  });

  test('When an allocation is refused, then nothing is counted', async () => {
    const before = await counter('accounting_credits_granted_total');

    const res = await request(ctx.app)
      .post('/api/credits/allocate')
      .set('Authorization', supervisor.auth)
      .send({ userId: 'someone', credits: 5, expiresAt: '2000-01-01T00:00:00Z' });

    expect(res.status).toBe(400);
    expect(await counter('accounting_credits_granted_total')).toBe(before);
  });

  test('When the expiry job writes off a lapsed lot, then credits expired grows by what was left in it', async () => {
    const userId = `metrics-expiry-${Date.now()}`;
    await ctx.db.query(`INSERT INTO user_accounts (id) VALUES ($1) RETURNING 1`, [userId]);
    const [lot] = await ctx.db.query<{ id: string }>(
      `INSERT INTO credit_allocations (user_id, total_credits, remaining_credits, expires_at, allocated_by)
       VALUES ($1, $2, $2, now() - interval '1 minute', 'test') RETURNING id::text`,
      [userId, micro(7.25).toString()],
    );
    await ctx.db.query(
      `INSERT INTO credit_transactions (user_id, type, amount, allocation_id, actor_id) VALUES ($1, 'grant', $2, $3, 'test') RETURNING 1`,
      [userId, micro(7.25).toString(), lot.id],
    );
    const before = await counter('accounting_credits_expired_total');

    await ctx.services.credits.expireLots();

    expect((await counter('accounting_credits_expired_total')) - before).toBeCloseTo(7.25, 6);
  });
});
