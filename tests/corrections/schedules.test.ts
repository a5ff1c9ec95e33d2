import request from 'supertest';
import { databaseOptionsFrom } from '../../src/config/sequelize';
import { createDatabase, type Database } from '../../src/db/database';
import { createServices } from '../../src/services';
import { createTestContext, type TestContext } from '../support/context';
import { availableOf, micro } from '../support/db';
import { userWithRole } from '../support/tokens';
import { discrepancies } from '../credits/helpers';
import { recordState, recordUsage } from './helpers';

let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext();
});
afterAll(() => ctx.close());

const supervisor = userWithRole('supervisor');
const newUser = () => userWithRole('user');

const create = (body: Record<string, unknown>, auth = supervisor.auth, key?: string) => {
  const req = request(ctx.app).post('/api/credits/schedules').set('Authorization', auth);
  if (key) req.set('Idempotency-Key', key);
  return req.send(body);
};

/** The grants of a schedule, oldest period first, as ISO strings and hours. */
async function grantsOf(scheduleId: string, db: Database = ctx.db) {
  const rows = await db.query<{ period_start: Date; period_end: Date; expires_at: Date | null; total: string; hours: string }>(
    `SELECT g.period_start, g.period_end, a.expires_at, a.total_credits::text AS total,
            (extract(epoch FROM g.period_end - g.period_start) / 3600)::text AS hours
       FROM credit_schedule_grants g JOIN credit_allocations a ON a.id = g.allocation_id
      WHERE g.schedule_id = $1 ORDER BY g.period_start`,
    [scheduleId],
  );
  return rows.map((r) => ({
    start: r.period_start.toISOString(),
    end: r.period_end.toISOString(),
    expiresAt: r.expires_at?.toISOString() ?? null,
    total: r.total,
    hours: Number(r.hours),
  }));
}

const materialize = (now: string) => ctx.services.corrections.materializeSchedules(new Date(now));

describe('POST/GET/DELETE /api/credits/schedules', () => {
  test('When a supervisor creates a schedule, then 201 with the schedule; GET lists it; DELETE stops it once (then 404)', async () => {
    const user = newUser();
    const res = await create({ userId: user.id, credits: 25, period: 'month', timezone: 'Europe/Berlin', expireAtPeriodEnd: true, rolloverCapCredits: 10, startAt: '2027-01-15T10:00:00Z' });
    expect(res.status).toBe(201);
    expect(res.body).toEqual({
      id: expect.any(String),
      userId: user.id,
      credits: 25,
      period: 'month',
      timezone: 'Europe/Berlin',
      expireAtPeriodEnd: true,
      expiresInDays: null,
      rolloverCapCredits: 10,
      startAt: '2027-01-15T10:00:00.000Z',
      nextPeriodStart: '2026-12-31T23:00:00.000Z',
      createdBy: supervisor.id,
      createdAt: expect.any(String),
      deletedAt: null,
    });
    const list = await request(ctx.app).get('/api/credits/schedules').query({ userId: user.id }).set('Authorization', supervisor.auth);
    expect(list.status).toBe(200);
    expect(list.body).toEqual({ data: [res.body], nextCursor: null });
    const del = await request(ctx.app).delete(`/api/credits/schedules/${res.body.id}`).set('Authorization', supervisor.auth);
    expect(del.status).toBe(200);
    expect(del.body.deletedAt).toEqual(expect.any(String));
    expect((await request(ctx.app).delete(`/api/credits/schedules/${res.body.id}`).set('Authorization', supervisor.auth)).status).toBe(404);
    // A deleted schedule grants nothing.
    await materialize('2027-06-01T00:00:00Z');
    expect(await grantsOf(res.body.id)).toEqual([]);
  });

  test('When the body is invalid (a start over 35 days back included) or the caller is a user, then 400 / 403 and no schedule exists; 34 days back is fine', async () => {
    const user = newUser();
    const bad = [
      { userId: user.id, credits: 1, period: 'year' },
      { userId: user.id, credits: 0, period: 'day' },
      { userId: user.id, credits: 1, period: 'day', timezone: 'Mars/Olympus' },
      { userId: user.id, credits: 1, period: 'day', expireAtPeriodEnd: true, expiresInDays: 3 },
      { userId: user.id, credits: 1, period: 'day', startAt: 'tomorrow' },
      // The audit's case: a start in 2000 granted every day since at once (thousands of lots).
      { userId: user.id, credits: 1, period: 'day', startAt: '2000-01-01T00:00:00Z' },
      { userId: user.id, credits: 1, period: 'day', startAt: new Date(Date.now() - 36 * 86_400_000).toISOString() },
      { userId: user.id, period: 'day' },
    ];
    for (const body of bad) {
      const res = await create(body);
      expect({ body, status: res.status }).toEqual({ body, status: 400 });
    }
    expect((await create({ userId: user.id, credits: 1, period: 'day' }, user.auth)).status).toBe(403);
    expect((await request(ctx.app).get('/api/credits/schedules').set('Authorization', user.auth)).status).toBe(403);
    const [row] = await ctx.db.query<{ n: string }>(`SELECT count(*)::text AS n FROM credit_schedules WHERE user_id = $1`, [user.id]);
    expect(row.n).toBe('0');
    const recent = await create({ userId: user.id, credits: 1, period: 'day', startAt: new Date(Date.now() - 34 * 86_400_000).toISOString() });
    expect(recent.status).toBe(201);
  });

  test('When the same Idempotency-Key is sent twice, then one schedule', async () => {
    const user = newUser();
    const a = await create({ userId: user.id, credits: 1, period: 'day' }, supervisor.auth, 'sched-1');
    const b = await create({ userId: user.id, credits: 1, period: 'day' }, supervisor.auth, 'sched-1');
    expect(b.headers['idempotent-replayed']).toBe('true');
    expect(b.body).toEqual(a.body);
    const list = await request(ctx.app).get('/api/credits/schedules').query({ userId: user.id }).set('Authorization', supervisor.auth);
    expect(list.body.data).toHaveLength(1);
    // Stopped, so that later tests' simulated clocks do not grant it every day until then.
    await request(ctx.app).delete(`/api/credits/schedules/${a.body.id}`).set('Authorization', supervisor.auth);
  });
});

describe('materialization under a simulated clock', () => {
  test('When a monthly Berlin schedule is materialized months late, then each missed month is granted once, from local midnight, across the DST change, expiring at period end', async () => {
    const user = newUser();
    const id = (await create({ userId: user.id, credits: 5, period: 'month', timezone: 'Europe/Berlin', expireAtPeriodEnd: true, startAt: '2027-01-15T10:00:00Z' })).body.id;
    await materialize('2027-01-10T00:00:00Z'); // before startAt
    expect(await grantsOf(id)).toEqual([]);
    await materialize('2027-04-02T12:00:00Z');
    expect(await grantsOf(id)).toEqual([
      { start: '2026-12-31T23:00:00.000Z', end: '2027-01-31T23:00:00.000Z', expiresAt: '2027-01-31T23:00:00.000Z', total: String(micro(5)), hours: 744 },
      { start: '2027-01-31T23:00:00.000Z', end: '2027-02-28T23:00:00.000Z', expiresAt: '2027-02-28T23:00:00.000Z', total: String(micro(5)), hours: 672 },
      // March has 31 days but loses an hour to summer time (28 March 2027).
      { start: '2027-02-28T23:00:00.000Z', end: '2027-03-31T22:00:00.000Z', expiresAt: '2027-03-31T22:00:00.000Z', total: String(micro(5)), hours: 743 },
      { start: '2027-03-31T22:00:00.000Z', end: '2027-04-30T22:00:00.000Z', expiresAt: '2027-04-30T22:00:00.000Z', total: String(micro(5)), hours: 720 },
    ]);
    // Running again, or at the same instant, grants nothing more.
    await materialize('2027-04-02T12:00:00Z');
    await materialize('2027-04-30T21:59:59Z');
    expect(await grantsOf(id)).toHaveLength(4);
    // The month end in Berlin: 30 April 22:00 UTC starts May.
    await materialize('2027-04-30T22:00:00Z');
    expect((await grantsOf(id)).map((g) => g.start).at(-1)).toBe('2027-04-30T22:00:00.000Z');
    expect(await discrepancies(ctx)).toEqual([]);
  });

  test('When a daily New York schedule crosses both DST changes, then those days are 23 and 25 hours long and each is granted once', async () => {
    const user = newUser();
    const spring = (await create({ userId: user.id, credits: 1, period: 'day', timezone: 'America/New_York', startAt: '2027-03-13T12:00:00Z' })).body.id;
    await materialize('2027-03-15T12:00:00Z');
    expect((await grantsOf(spring)).map((g) => [g.start, g.hours])).toEqual([
      ['2027-03-13T05:00:00.000Z', 24],
      ['2027-03-14T05:00:00.000Z', 23],
      ['2027-03-15T04:00:00.000Z', 24],
    ]);
    const autumn = (await create({ userId: user.id, credits: 1, period: 'day', timezone: 'America/New_York', startAt: '2027-11-07T12:00:00Z' })).body.id;
    await materialize('2027-11-08T12:00:00Z');
    expect((await grantsOf(autumn)).map((g) => [g.start, g.hours])).toEqual([
      ['2027-11-07T04:00:00.000Z', 25],
      ['2027-11-08T05:00:00.000Z', 24],
    ]);
  });

  test('When a weekly schedule runs, then weeks start on Monday in the zone and a grant can expire N days after its period starts', async () => {
    const user = newUser();
    const id = (await create({ userId: user.id, credits: 2, period: 'week', timezone: 'Asia/Tokyo', expiresInDays: 3, startAt: '2027-06-02T00:00:00Z' })).body.id;
    await materialize('2027-06-10T00:00:00Z');
    expect((await grantsOf(id)).map((g) => [g.start, g.expiresAt])).toEqual([
      ['2027-05-30T15:00:00.000Z', '2027-06-02T15:00:00.000Z'], // Monday 31 May 00:00 in Tokyo
      ['2027-06-06T15:00:00.000Z', '2027-06-09T15:00:00.000Z'],
    ]);
  });

  test('When a rollover cap is set, then at each new period what is left of earlier grants above the cap is revoked', async () => {
    const user = newUser();
    await create({ userId: user.id, credits: 10, period: 'day', rolloverCapCredits: 4, startAt: '2027-07-01T00:00:00Z' });
    await materialize('2027-07-01T01:00:00Z');
    expect(await availableOf(ctx.db, user.id)).toBe(micro(10));
    await materialize('2027-07-02T01:00:00Z');
    expect(await availableOf(ctx.db, user.id)).toBe(micro(14)); // 4 rolled over + 10
    await materialize('2027-07-03T01:00:00Z');
    expect(await availableOf(ctx.db, user.id)).toBe(micro(14));
    const [revoked] = await ctx.db.query<{ total: string }>(
      `SELECT sum(amount)::text AS total FROM credit_transactions WHERE user_id = $1 AND type = 'revoke'`,
      [user.id],
    );
    expect(revoked.total).toBe(String(micro(16)));
    expect(await discrepancies(ctx)).toEqual([]);
  });

  test('When a user has unpaid usage, then a scheduled grant pays it first', async () => {
    const user = newUser();
    const recordId = (await recordUsage(ctx, supervisor.auth, { userId: user.id, credits: 3 })).body.usageRecord.id;
    await create({ userId: user.id, credits: 10, period: 'day', startAt: '2027-08-01T00:00:00Z' });
    await materialize('2027-08-01T01:00:00Z');
    expect(await recordState(ctx, recordId)).toMatchObject({ unpaid: 0n, charged: micro(3) });
    expect(await availableOf(ctx.db, user.id)).toBe(micro(7));
  });
});

describe('several instances', () => {
  test('When three instances materialize at once, then every (schedule, period) is granted exactly once and reconcile is clean', async () => {
    const instances: Database[] = [];
    // Its own database: materialization is global, and only these schedules may be due.
    const own = await createTestContext();
    try {
      for (let i = 0; i < 3; i++) {
        instances.push(createDatabase(databaseOptionsFrom(own.config, own.databaseUrl, { poolMax: 3, statementTimeoutMs: 30_000, lockTimeoutMs: 10_000, acquireTimeoutMs: 30_000 })));
      }
      const services = instances.map((db) => createServices(db, own.config));
      const users = Array.from({ length: 4 }, () => newUser());
      const ids: string[] = [];
      for (const user of users) {
        const res = await request(own.app)
          .post('/api/credits/schedules')
          .set('Authorization', supervisor.auth)
          .send({ userId: user.id, credits: 1, period: 'day', timezone: 'Europe/London', startAt: '2027-10-20T00:00:00Z' });
        ids.push(res.body.id);
      }
      const now = new Date('2027-11-03T12:00:00Z'); // 15 days each, across the end of summer time (31 October)
      const granted = await Promise.all(services.flatMap((s) => [s.corrections.materializeSchedules(now), s.corrections.materializeSchedules(now)]));
      expect(granted.reduce((a, b) => a + b, 0)).toBe(4 * 15);
      for (const id of ids) {
        const grants = await grantsOf(id, own.db);
        expect(grants).toHaveLength(15);
        expect(new Set(grants.map((g) => g.start)).size).toBe(15);
        expect(grants.filter((g) => g.hours === 25).map((g) => g.start)).toEqual(['2027-10-30T23:00:00.000Z']);
      }
      for (const user of users) expect(await availableOf(own.db, user.id)).toBe(micro(15));
      expect(await discrepancies(own)).toEqual([]);
    } finally {
      await Promise.all(instances.map((db) => db.close()));
      await own.close();
    }
  });
});
