import request from 'supertest';
import { createTestContext, type TestContext } from '../support/context';
import { allEventsVisible, count } from '../support/db';
import { userWithRole } from '../support/tokens';
import { addTestModel, TEST_MODEL } from '../sessions/support';

/**
 * The outbox (issue 15): every event is written by the same transaction as the change it reports, with the
 * once-per-crossing rules of API.md. Events are checked through GET /api/events and in the table.
 */
describe('events outbox', () => {
  let ctx: TestContext;
  const admin = userWithRole('admin');

  beforeAll(async () => {
    ctx = await createTestContext({ LOW_BALANCE_THRESHOLDS: '10, 5,1', EXPIRING_NOTICE_DAYS: '7' });
    await ctx.services.events.syncSettings();
    await addTestModel(ctx.db);
  });
  afterAll(() => ctx.close());

  const allocate = (userId: string, credits: number | string, extra: Record<string, unknown> = {}) =>
    request(ctx.app).post('/api/credits/allocate').set('Authorization', admin.auth).send({ userId, credits, ...extra });
  const spend = (user: { auth: string }, credits: number | string) =>
    request(ctx.app).post('/api/usage/record').set('Authorization', user.auth).send({ service: 'chat', operation: 'completion', credits });
  const eventsOf = async (userId: string, type?: string) => {
    await allEventsVisible(ctx.db);
    const res = await request(ctx.app).get('/api/events').query({ userId, limit: 500, ...(type ? { type } : {}) }).set('Authorization', admin.auth);
    expect(res.status).toBe(200);
    return res.body.data as Array<{ id: string; type: string; userId: string; createdAt: string; data: Record<string, unknown> }>;
  };

  it('When credits are allocated, then one credits.granted event carries the lot, in the exact event shape', async () => {
    const user = userWithRole('user');
    const res = await allocate(user.id, 25, { note: 'welcome' });
    expect(res.status).toBe(201);

    const events = await eventsOf(user.id);
    expect(events).toEqual([
      {
        id: expect.stringMatching(/^evt_\d+$/),
        type: 'credits.granted',
        createdAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
        userId: user.id,
        data: { allocationId: res.body.allocation.id, credits: 25, expiresAt: null, allocatedBy: admin.id, note: 'welcome' },
      },
    ]);
  });

  it('When one movement crosses several thresholds, then one credits.low per threshold; at 0 credits.depleted; a rise re-arms', async () => {
    const user = userWithRole('user');
    await allocate(user.id, 12);
    expect((await spend(user, 11.5)).status).toBe(201); // 12 -> 0.5: crosses 10, 5 and 1
    let low = await eventsOf(user.id, 'credits.low');
    expect(low.map((e) => e.data)).toEqual([
      { thresholdCredits: 10, availableCredits: 0.5 },
      { thresholdCredits: 5, availableCredits: 0.5 },
      { thresholdCredits: 1, availableCredits: 0.5 },
    ]);
    expect(await eventsOf(user.id, 'credits.depleted')).toEqual([]);

    await spend(user, 0.5); // 0.5 -> 0
    expect((await eventsOf(user.id, 'credits.depleted')).map((e) => e.data)).toEqual([{ availableCredits: 0 }]);
    await spend(user, 3); // still 0, now unpaid: nothing new
    expect(await eventsOf(user.id, 'credits.depleted')).toHaveLength(1);

    await allocate(user.id, 23); // 0 -> 23, of which 3 settle the unpaid usage (SETTLE_UNPAID_ON_GRANT): 20, re-arms every threshold
    await spend(user, 9); // 20 -> 11: crosses nothing
    expect(await eventsOf(user.id, 'credits.low')).toHaveLength(3);
    await spend(user, 2); // 11 -> 9: crosses 10 again
    low = await eventsOf(user.id, 'credits.low');
    expect(low).toHaveLength(4);
    expect(low[3].data).toEqual({ thresholdCredits: 10, availableCredits: 9 });
  });

  it('When many requests cross a threshold at once, then exactly one credits.low is written for it', async () => {
    const user = userWithRole('user');
    await allocate(user.id, 11);
    const results = await Promise.all(Array.from({ length: 20 }, () => spend(user, 0.5)));
    expect(results.every((r) => r.status === 201)).toBe(true);
    // 11 -> 1: crosses 10 and 5 once each, never 1.
    expect((await eventsOf(user.id, 'credits.low')).map((e) => e.data.thresholdCredits)).toEqual([10, 5]);
  });

  it('When a hold takes the balance under a threshold and the overrun of finalize is left unpaid, then credits.low, credits.depleted and session.overage', async () => {
    const user = userWithRole('user');
    await allocate(user.id, 6);
    const init = await request(ctx.app).post('/api/streaming-sessions/initialize').set('Authorization', user.auth).send({ modelId: TEST_MODEL, estimatedCredits: 2 });
    expect(init.status).toBe(201);
    expect((await eventsOf(user.id, 'credits.low')).map((e) => e.data)).toEqual([{ thresholdCredits: 5, availableCredits: 4 }]);

    // 10,000 input tokens cost 10 credits: 2 held + 4 available = 6 paid, 4 unpaid.
    const fin = await request(ctx.app)
      .post('/api/streaming-sessions/finalize')
      .set('Authorization', user.auth)
      .send({ sessionId: init.body.sessionId, actualInputTokens: 10_000, actualOutputTokens: 0 });
    expect(fin.status).toBe(200);
    expect(fin.body.unpaidCredits).toBe(4);
    const overage = await eventsOf(user.id, 'session.overage');
    expect(overage.map((e) => e.data)).toEqual([
      { sessionId: init.body.sessionId, status: 'completed', modelId: TEST_MODEL, usedCredits: 10, unpaidCredits: 4 },
    ]);
    expect((await eventsOf(user.id, 'credits.depleted')).length).toBe(1);
    expect((await eventsOf(user.id, 'credits.low')).map((e) => e.data.thresholdCredits)).toEqual([5, 1]);
  });

  it('When the sweeper expires a session and a lot, then session.expired and credits.expired are written with them', async () => {
    const user = userWithRole('user');
    const grant = await allocate(user.id, 3, { expiresInDays: 30 });
    const init = await request(ctx.app).post('/api/streaming-sessions/initialize').set('Authorization', user.auth).send({ modelId: TEST_MODEL, estimatedCredits: 1 });
    await ctx.db.query(`UPDATE streaming_sessions SET expires_at = now() - interval '1 second' WHERE id = $1 RETURNING 1`, [init.body.sessionId]);
    await ctx.services.sessions.expireOverdue(100);
    const expired = await eventsOf(user.id, 'session.expired');
    expect(expired.map((e) => e.data)).toEqual([
      expect.objectContaining({ sessionId: init.body.sessionId, modelId: TEST_MODEL, allocatedCredits: 1, chargedCredits: 0, releasedCredits: 1 }),
    ]);

    await ctx.db.query(`UPDATE credit_allocations SET expires_at = now() - interval '1 second' WHERE id = $1 RETURNING 1`, [grant.body.allocation.id]);
    await ctx.services.credits.expireLots();
    expect((await eventsOf(user.id, 'credits.expired')).map((e) => e.data)).toEqual([
      { allocationId: grant.body.allocation.id, expiredCredits: 3, expiresAt: expect.any(String) },
    ]);
    expect(await eventsOf(user.id, 'credits.depleted')).toHaveLength(1);
  });

  it('When a lot with credits left expires within EXPIRING_NOTICE_DAYS, then credits.expiring is written once for it, however often the job runs', async () => {
    const user = userWithRole('user');
    const soon = await allocate(user.id, 4, { expiresInDays: 3 });
    await allocate(user.id, 4, { expiresInDays: 30 });
    await Promise.all([ctx.services.events.announceExpiring(), ctx.services.events.announceExpiring()]);
    await ctx.services.events.announceExpiring();
    const expiring = await eventsOf(user.id, 'credits.expiring');
    expect(expiring.map((e) => e.data)).toEqual([{ allocationId: soon.body.allocation.id, remainingCredits: 4, expiresAt: soon.body.allocation.expiresAt }]);
  });

  it('When the change rolls back, then its event is gone with it; when it commits, the event is there', async () => {
    const user = userWithRole('user');
    await expect(
      ctx.db.transaction(async (tx) => {
        await ctx.db.query(`SELECT * FROM acct_allocate($1, 5000000, NULL, NULL, 'test', NULL)`, [user.id], tx);
        expect(await ctx.db.query(`SELECT id FROM events WHERE user_id = $1`, [user.id], tx)).toHaveLength(1);
        throw new Error('forced rollback');
      }),
    ).rejects.toThrow('forced rollback');
    expect(await count(ctx.db, 'events', 'user_id = $1', [user.id])).toBe(0);
    expect(await count(ctx.db, 'credit_allocations', 'user_id = $1', [user.id])).toBe(0);

    // A refused initialize (402) writes nothing either.
    await allocate(user.id, 1);
    const before = await count(ctx.db, 'events', 'user_id = $1', [user.id]);
    const refused = await request(ctx.app).post('/api/streaming-sessions/initialize').set('Authorization', user.auth).send({ modelId: TEST_MODEL, estimatedCredits: 2 });
    expect(refused.status).toBe(402);
    expect(await count(ctx.db, 'events', 'user_id = $1', [user.id])).toBe(before);
  });

  it('When the ledger is reconciled after all of this, then it is clean', async () => {
    const res = await request(ctx.app).get('/api/admin/reconcile').set('Authorization', admin.auth);
    expect(res.status).toBe(200);
    expect(res.body.ok).toBe(true);
  });
});
