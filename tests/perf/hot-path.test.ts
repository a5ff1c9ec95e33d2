import { Client } from 'pg';
import request from 'supertest';
import { createTestContext, type TestContext } from '../support/context';
import { availableOf, count, grantDirect, micro } from '../support/db';
import { bearer, tokenFor } from '../support/tokens';
import { addTestModel, ledgerProblems, TEST_MODEL } from '../sessions/support';

// The hot path mirrors the caller inside its own statement (initialize, own balance) instead of a separate
// upsert, and the separate upsert stays read-only when nothing changed. These check that nothing was lost.
let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext({ DB_LOCK_TIMEOUT_MS: '1000', PRICE_CACHE_TTL_MS: '600000' });
  await addTestModel(ctx.db);
});
afterEach(async () => {
  expect(await ledgerProblems(ctx.db)).toEqual([]);
});
afterAll(() => ctx.close());

const userRow = async (id: string) =>
  (await ctx.db.query<{ email: string | null; username: string | null; role: string }>(
    `SELECT email, username, role FROM user_accounts WHERE id = $1`,
    [id],
  ))[0];

describe('hot path: the caller is mirrored in the same statement', () => {
  test('When a new user initializes a session first, then the hold is made and the user is mirrored with its claims', async () => {
    await grantDirect(ctx.db, 'hp-ann', 10);
    const token = tokenFor({ sub: 'hp-ann', role: 'supervisor', email: 'ann@example.com', username: 'ann' });

    const res = await request(ctx.app)
      .post('/api/streaming-sessions/initialize')
      .set('Authorization', bearer(token))
      .send({ modelId: TEST_MODEL, estimatedCredits: 2 });

    expect(res.status).toBe(201);
    expect(await userRow('hp-ann')).toEqual({ email: 'ann@example.com', username: 'ann', role: 'supervisor' });
    expect(await availableOf(ctx.db, 'hp-ann')).toBe(micro(8));
  });

  test('When a user never seen asks for its balance, then the answer is zero and the user now exists with its claims', async () => {
    const token = tokenFor({ sub: 'hp-bea', email: 'bea@example.com', username: 'bea' });

    const res = await request(ctx.app).get('/api/credits/balance').set('Authorization', bearer(token));

    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ userId: 'hp-bea', availableCredits: 0, reservedCredits: 0, allocations: [] });
    expect(await userRow('hp-bea')).toEqual({ email: 'bea@example.com', username: 'bea', role: 'user' });
  });

  test('When the token changes the email between two hot-path calls, then the mirror follows it', async () => {
    await grantDirect(ctx.db, 'hp-cid', 10);
    const as = (email: string) => bearer(tokenFor({ sub: 'hp-cid', email }));

    await request(ctx.app).get('/api/credits/balance').set('Authorization', as('old@example.com'));
    const res = await request(ctx.app)
      .post('/api/streaming-sessions/initialize')
      .set('Authorization', as('new@example.com'))
      .send({ modelId: TEST_MODEL, estimatedCredits: 1 });

    expect(res.status).toBe(201);
    expect((await userRow('hp-cid')).email).toBe('new@example.com');
  });

  test('When initialize is refused for lack of credits, then nothing is held but the caller is still mirrored', async () => {
    const token = tokenFor({ sub: 'hp-dan', email: 'dan@example.com' });

    const res = await request(ctx.app)
      .post('/api/streaming-sessions/initialize')
      .set('Authorization', bearer(token))
      .send({ modelId: TEST_MODEL, estimatedCredits: 1 });

    expect(res.status).toBe(402);
    expect(await count(ctx.db, 'streaming_sessions', 'user_id = $1', ['hp-dan'])).toBe(0);
    expect((await userRow('hp-dan')).email).toBe('dan@example.com');
  });
});

describe('hot path: round trips with a cold user cache', () => {
  test('When this process has not mirrored the caller, then initialize and the own balance are still one statement each', async () => {
    await grantDirect(ctx.db, 'hp-gus', 10);
    const auth = bearer(tokenFor({ sub: 'hp-gus', email: 'gus@example.com' }));
    // Warm the price cache with another user; the test app caches no user (USER_CACHE_TTL_MS=0).
    await request(ctx.app)
      .post('/api/streaming-sessions/initialize')
      .set('Authorization', bearer(tokenFor({ sub: 'hp-gus-warm' })))
      .send({ modelId: TEST_MODEL, estimatedCredits: 1 });
    const query = jest.spyOn(ctx.db, 'query');
    const prepared = jest.spyOn(ctx.db, 'prepared');
    const statements = () => query.mock.calls.length + prepared.mock.calls.length;
    try {
      const init = await request(ctx.app)
        .post('/api/streaming-sessions/initialize')
        .set('Authorization', auth)
        .send({ modelId: TEST_MODEL, estimatedCredits: 1 });
      expect(init.status).toBe(201);
      expect(statements()).toBe(1);

      query.mockClear();
      prepared.mockClear();
      const balance = await request(ctx.app).get('/api/credits/balance').set('Authorization', auth);
      expect(balance.status).toBe(200);
      expect(balance.body.reservedCredits).toBe(1);
      expect(statements()).toBe(1);
    } finally {
      query.mockRestore();
      prepared.mockRestore();
    }
  });
});

describe('hot path: an unchanged mirror takes no lock', () => {
  test('When a money movement holds the user row, then a request whose mirror changes nothing is not blocked by it', async () => {
    const token = tokenFor({ sub: 'hp-eve', email: 'eve@example.com' });
    await request(ctx.app).get('/api/me').set('Authorization', bearer(token)); // mirrored once
    const locker = new Client({ connectionString: ctx.databaseUrl });
    await locker.connect();
    try {
      await locker.query('BEGIN');
      await locker.query(`SELECT 1 FROM user_accounts WHERE id = 'hp-eve' FOR UPDATE`);

      // The test app caches nothing (USER_CACHE_TTL_MS=0), so this request mirrors again while the row is locked;
      // a locking upsert would wait out the 1 s lock timeout and answer 503.
      const res = await request(ctx.app).get('/api/me').set('Authorization', bearer(token));

      expect(res.status).toBe(200);
    } finally {
      await locker.query('ROLLBACK');
      await locker.end();
    }
  });

  test('When the claims did change, then the mirror waits for the row and writes them', async () => {
    await request(ctx.app).get('/api/me').set('Authorization', bearer(tokenFor({ sub: 'hp-fay', email: 'a@example.com' })));
    const locker = new Client({ connectionString: ctx.databaseUrl });
    await locker.connect();
    await locker.query('BEGIN');
    await locker.query(`SELECT 1 FROM user_accounts WHERE id = 'hp-fay' FOR UPDATE`);

    const pending = request(ctx.app).get('/api/me').set('Authorization', bearer(tokenFor({ sub: 'hp-fay', email: 'b@example.com' })));
    const released = new Promise((r) => setTimeout(r, 200)).then(() => locker.query('COMMIT'));
    const [res] = await Promise.all([pending, released]);
    await locker.end();

    expect(res.status).toBe(200);
    expect((await userRow('hp-fay')).email).toBe('b@example.com');
  });
});
