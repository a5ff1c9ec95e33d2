import { Client } from 'pg';
import request from 'supertest';
import { fromDb, toCredits } from '../../src/lib/money';
import { SEED_USER_PREFIX, seedUsage } from '../../scripts/seed-usage';
import { createTestContext, type TestContext } from '../support/context';
import { count } from '../support/db';
import { userWithRole } from '../support/tokens';
import { NO_MISMATCHES, rollupMismatches } from './helpers';

let ctx: TestContext;
let client: Client;
beforeAll(async () => {
  ctx = await createTestContext();
  client = new Client({ connectionString: ctx.databaseUrl });
  await client.connect();
});
afterAll(async () => {
  await client.end();
  await ctx.close();
});

describe('seedUsage (npm run seed:usage)', () => {
  test('When the generator runs twice, then the records are there and every rollup equals them exactly', async () => {
    const first = await seedUsage(client, { users: 25, records: 3000, days: 20 });
    const second = await seedUsage(client, { users: 25, records: 2000, days: 20 });

    expect(first.insertedRecords).toBe(3000);
    expect(second.insertedRecords).toBe(2000);
    expect(await count(ctx.db, 'usage_records')).toBe(5000);
    expect(await count(ctx.db, 'user_accounts', `id LIKE '${SEED_USER_PREFIX}%'`)).toBe(25);
    expect(await count(ctx.db, 'credit_allocations')).toBe(25);
    expect(await rollupMismatches(ctx.db)).toEqual(NO_MISMATCHES);
  });

  test("When a seeded user asks for stats, then they match the user's raw records", async () => {
    const user = userWithRole('user', `${SEED_USER_PREFIX}1`);
    const res = await request(ctx.app).get('/api/usage/stats').set('Authorization', user.auth);
    const [raw] = await ctx.db.query<{ requests: number; credits: string }>(
      `SELECT count(*)::int AS requests, coalesce(sum(credits), 0)::text AS credits FROM usage_records
        WHERE user_id = $1 AND (created_at AT TIME ZONE 'UTC')::date BETWEEN $2::date AND $3::date`,
      [user.id, res.body.from.slice(0, 10), res.body.to.slice(0, 10)],
    );
    expect(raw.requests).toBeGreaterThan(0);
    expect(res.body.totals).toMatchObject({ requests: raw.requests, credits: toCredits(fromDb(raw.credits)) });
  });

  test('When reset is asked for, then only the new records remain', async () => {
    await seedUsage(client, { users: 5, records: 100, days: 3, reset: true });
    expect(await count(ctx.db, 'usage_records')).toBe(100);
    expect(await rollupMismatches(ctx.db)).toEqual(NO_MISMATCHES);
  });
});
