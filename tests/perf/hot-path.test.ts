import { Client } from 'pg';
import request from 'supertest';
import { createTestContext, type TestContext } from '../support/context';
import { bearer, tokenFor } from '../support/tokens';

// The hot path mirrors the caller inside its own statement (own balance here) instead of a separate
// upsert, and the separate upsert stays read-only when nothing changed. These check that nothing was lost.
let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext({ DB_LOCK_TIMEOUT_MS: '1000' });
});
afterAll(() => ctx.close());

const userRow = async (id: string) =>
  (await ctx.db.query<{ email: string | null; username: string | null; role: string }>(
    `SELECT email, username, role FROM user_accounts WHERE id = $1`,
    [id],
  ))[0];

describe('hot path: the caller is mirrored in the same statement', () => {
  test('When a user never seen asks for its balance, then the answer is zero and the user now exists with its claims', async () => {
    const token = tokenFor({ sub: 'hp-bea', email: 'bea@example.com', username: 'bea' });

    const res = await request(ctx.app).get('/api/credits/balance').set('Authorization', bearer(token));

    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ userId: 'hp-bea', availableCredits: 0, reservedCredits: 0, allocations: [] });
    expect(await userRow('hp-bea')).toEqual({ email: 'bea@example.com', username: 'bea', role: 'user' });
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
