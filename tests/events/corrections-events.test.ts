import request from 'supertest';
import { createTestContext, type TestContext } from '../support/context';
import { allEventsVisible, count } from '../support/db';
import { userWithRole } from '../support/tokens';
import { adjust, recordUsage, refund, revoke } from '../corrections/helpers';

/**
 * Events of the corrections and schedules (issues 15 and 16): credits.adjusted (adjust of either sign,
 * revoke), usage.refunded, credits.granted for scheduled grants, and the low-balance events at the statement
 * that moves the credits. All written in the transaction of the change: read back through GET /api/events,
 * and absent when the change is refused or rolled back.
 */
describe('events of corrections and schedules', () => {
  let ctx: TestContext;
  const admin = userWithRole('admin');
  const supervisor = userWithRole('supervisor');

  beforeAll(async () => {
    ctx = await createTestContext({ LOW_BALANCE_THRESHOLDS: '10,5', EXPIRING_NOTICE_DAYS: '7' });
    await ctx.services.events.syncSettings();
  });
  afterAll(() => ctx.close());

  type Event = { id: string; type: string; userId: string; createdAt: string; data: Record<string, unknown> };
  const eventsOf = async (userId: string, type?: string): Promise<Event[]> => {
    await allEventsVisible(ctx.db);
    const res = await request(ctx.app).get('/api/events').query({ userId, limit: 500, ...(type ? { type } : {}) }).set('Authorization', admin.auth);
    expect(res.status).toBe(200);
    return res.body.data;
  };
  const allocate = (userId: string, credits: number, extra: Record<string, unknown> = {}) =>
    request(ctx.app).post('/api/credits/allocate').set('Authorization', admin.auth).send({ userId, credits, ...extra });
  const types = (events: Event[]) => events.map((e) => e.type);

  it('When a supervisor adjusts by +8, then credits.adjusted carries the new lot, and the rise re-arms the thresholds it passes', async () => {
    const user = userWithRole('user');
    const res = await adjust(ctx, supervisor.auth, { userId: user.id, credits: 8, reason: 'goodwill', expiresAt: '2099-01-01T00:00:00Z' });
    expect(res.status).toBe(201);
    const events = await eventsOf(user.id);
    expect(events).toEqual([
      {
        id: expect.stringMatching(/^evt_\d+$/),
        type: 'credits.adjusted',
        createdAt: expect.any(String),
        userId: user.id,
        data: {
          kind: 'adjust',
          credits: 8,
          allocationId: res.body.allocation.id,
          reason: 'goodwill',
          adjustedBy: supervisor.id,
          expiresAt: '2099-01-01T00:00:00.000Z',
          settledCredits: 0,
        },
      },
    ]);
    // 8 is at or above 5: a negative adjustment to 3 crosses it, in the same statement.
    const down = await adjust(ctx, supervisor.auth, { userId: user.id, credits: '-5', reason: 'clawback' });
    expect(down.status).toBe(200);
    const after = await eventsOf(user.id);
    expect(types(after)).toEqual(['credits.adjusted', 'credits.adjusted', 'credits.low']);
    expect(after[1].data).toEqual({ kind: 'adjust', credits: -5, allocationId: null, reason: 'clawback', adjustedBy: supervisor.id, expiresAt: null, settledCredits: 0 });
    expect(after[2].data).toEqual({ thresholdCredits: 5, availableCredits: 3 });
    expect(Number(after[2].id.slice(4))).toBeGreaterThan(Number(after[1].id.slice(4)));
  });

  it('When a negative adjustment takes the balance to 0, then credits.adjusted, credits.low and credits.depleted, in that order', async () => {
    const user = userWithRole('user');
    await allocate(user.id, 12);
    expect((await adjust(ctx, admin.auth, { userId: user.id, credits: -12, reason: 'mistake' })).status).toBe(200);
    const events = await eventsOf(user.id);
    expect(types(events)).toEqual(['credits.granted', 'credits.adjusted', 'credits.low', 'credits.low', 'credits.depleted']);
    expect(events.slice(2).map((e) => e.data)).toEqual([
      { thresholdCredits: 10, availableCredits: 0 },
      { thresholdCredits: 5, availableCredits: 0 },
      { availableCredits: 0 },
    ]);
  });

  it('When a lot is revoked, then credits.adjusted (kind revoke) with the held credits reported; revoking nothing writes nothing', async () => {
    const user = userWithRole('user');
    const lot = (await allocate(user.id, 20)).body.allocation.id;
    const res = await revoke(ctx, supervisor.auth, lot, { reason: 'granted by mistake', credits: 12 });
    expect(res.status).toBe(200);
    expect(res.body.revokedCredits).toBe(12);
    let events = await eventsOf(user.id);
    expect(types(events)).toEqual(['credits.granted', 'credits.adjusted', 'credits.low']);
    expect(events[1].data).toEqual({ kind: 'revoke', credits: -12, allocationId: lot, reason: 'granted by mistake', adjustedBy: supervisor.id, heldCredits: 0 });
    expect(events[2].data).toEqual({ thresholdCredits: 10, availableCredits: 8 });

    expect((await revoke(ctx, supervisor.auth, lot, { reason: 'the rest' })).body.revokedCredits).toBe(8);
    expect((await revoke(ctx, supervisor.auth, lot, { reason: 'again' })).body.revokedCredits).toBe(0);
    events = await eventsOf(user.id);
    expect(types(events)).toEqual(['credits.granted', 'credits.adjusted', 'credits.low', 'credits.adjusted', 'credits.low', 'credits.depleted']);
    expect(events[3].data).toMatchObject({ kind: 'revoke', credits: -8, reason: 'the rest' });
  });

  it('When a usage record is refunded, then usage.refunded with what was forgiven and returned; returned credits re-arm the thresholds', async () => {
    const user = userWithRole('user');
    await allocate(user.id, 6);
    const rec = await recordUsage(ctx, user.auth, { credits: 9 }); // 6 charged, 3 unpaid: 6 -> 0
    expect(rec.status).toBe(201);
    const id = rec.body.usageRecord.id;
    expect(types(await eventsOf(user.id))).toEqual(['credits.granted', 'credits.low', 'credits.depleted']);

    const partial = await refund(ctx, supervisor.auth, id, { reason: 'bad answer', credits: 4 }); // 3 forgiven, 1 returned
    expect(partial.status).toBe(200);
    const all = await refund(ctx, admin.auth, id, { reason: 'the rest' }); // 5 returned: 1 -> 6
    expect(all.status).toBe(200);
    const events = await eventsOf(user.id);
    expect(types(events)).toEqual(['credits.granted', 'credits.low', 'credits.depleted', 'usage.refunded', 'usage.refunded']);
    expect(events[3].data).toEqual({
      usageRecordId: id,
      sessionId: null,
      modelId: null,
      credits: 4,
      forgivenCredits: 3,
      returnedCredits: 1,
      refundedCredits: 4,
      recordCredits: 9,
      reason: 'bad answer',
      refundedBy: supervisor.id,
    });
    expect(events[4].data).toMatchObject({ credits: 5, forgivenCredits: 0, returnedCredits: 5, refundedCredits: 9, refundedBy: admin.id });
    // Re-armed at 5 (available 6): spending to 4 crosses it again.
    await recordUsage(ctx, user.auth, { credits: 2 });
    const low = await eventsOf(user.id, 'credits.low');
    expect(low.map((e) => e.data)).toEqual([
      { thresholdCredits: 5, availableCredits: 0 },
      { thresholdCredits: 5, availableCredits: 4 },
    ]);
    // Nothing left to refund: no event.
    expect((await refund(ctx, admin.auth, id, { reason: 'nothing left' })).status).toBe(200);
    expect(await eventsOf(user.id, 'usage.refunded')).toHaveLength(2);
  });

  it('When a schedule grants its periods, then one credits.granted per period with the schedule and period; debt settled by it counts at that statement', async () => {
    const user = userWithRole('user');
    await allocate(user.id, 1);
    await recordUsage(ctx, user.auth, { credits: 4 }); // 1 charged, 3 unpaid
    const schedule = await request(ctx.app)
      .post('/api/credits/schedules')
      .set('Authorization', supervisor.auth)
      .send({ userId: user.id, credits: 8, period: 'day', rolloverCapCredits: 2, startAt: '2031-03-01T00:00:00Z' });
    expect(schedule.status).toBe(201);
    // Another file's schedules are not in this database; two periods are due.
    await ctx.services.corrections.materializeSchedules(new Date('2031-03-02T12:00:00Z'));
    const granted = await eventsOf(user.id, 'credits.granted');
    expect(granted.map((e) => e.data)).toEqual([
      { allocationId: expect.any(String), credits: 1, expiresAt: null, allocatedBy: admin.id, note: null },
      {
        allocationId: expect.any(String),
        credits: 8,
        expiresAt: null,
        allocatedBy: supervisor.id,
        note: `schedule ${schedule.body.id} period 2031-03-01`,
        scheduleId: schedule.body.id,
        periodStart: '2031-03-01T00:00:00.000Z',
        rolloverRevokedCredits: 0,
      },
      expect.objectContaining({ credits: 8, scheduleId: schedule.body.id, periodStart: '2031-03-02T00:00:00.000Z', rolloverRevokedCredits: 3 }),
    ]);
    // Period 1: 8 granted, 3 settle the debt -> 5 (reaches 5, nothing crossed downwards).
    // Period 2: 5 above the cap of 2 -> 3 revoked, 8 granted -> 10. No credits.low anywhere after the grants.
    const all = await eventsOf(user.id);
    const afterFirstGrant = all.slice(all.findIndex((e) => e.data.scheduleId !== undefined));
    expect(types(afterFirstGrant)).toEqual(['credits.granted', 'credits.granted']);
    const balance = await request(ctx.app).get(`/api/credits/balance/${user.id}`).set('Authorization', admin.auth);
    expect(balance.body.availableCredits).toBe(10);
    // Materializing again grants nothing more, so writes no event.
    await ctx.services.corrections.materializeSchedules(new Date('2031-03-02T12:00:00Z'));
    expect(await eventsOf(user.id, 'credits.granted')).toHaveLength(3);
  });

  it('When an allocation settles debt and leaves the balance under a threshold, then credits.low is written at that statement', async () => {
    const user = userWithRole('user');
    await allocate(user.id, 2);
    await recordUsage(ctx, user.auth, { credits: 9 }); // 2 charged, 7 unpaid
    await allocate(user.id, 11); // 11 granted, 7 settle the debt: available 4 (granted to 11 then settled to 4)
    const events = await eventsOf(user.id);
    expect(types(events)).toEqual(['credits.granted', 'credits.depleted', 'credits.granted', 'credits.low', 'credits.low']);
    expect(events.slice(3).map((e) => e.data)).toEqual([
      { thresholdCredits: 10, availableCredits: 4 },
      { thresholdCredits: 5, availableCredits: 4 },
    ]);
  });

  it('When a correction is refused or rolled back, then it writes no event', async () => {
    const user = userWithRole('user');
    await allocate(user.id, 5);
    const rec = await recordUsage(ctx, user.auth, { credits: 2 });
    const before = await count(ctx.db, 'events', 'user_id = $1', [user.id]);

    expect((await adjust(ctx, supervisor.auth, { userId: user.id, credits: -50, reason: 'too much' })).status).toBe(402);
    expect((await refund(ctx, supervisor.auth, rec.body.usageRecord.id, { reason: 'too much', credits: 3 })).status).toBe(400);
    expect(await count(ctx.db, 'events', 'user_id = $1', [user.id])).toBe(before);

    // The ledger functions themselves, in a transaction that then fails: nothing of theirs survives.
    const lot = (await ctx.db.query<{ id: string }>(`SELECT id::text FROM credit_allocations WHERE user_id = $1`, [user.id]))[0].id;
    for (const statement of [
      [`SELECT * FROM acct_adjust($1, 4000000, NULL, 'test', 'r', true)`, [user.id]],
      [`SELECT * FROM acct_adjust($1, -2000000, NULL, 'test', 'r', true)`, [user.id]],
      [`SELECT * FROM acct_revoke($1, NULL, 'test', 'r')`, [lot]],
      [`SELECT * FROM acct_refund_usage($1, NULL, 'test', 'r')`, [rec.body.usageRecord.id]],
    ] as const) {
      await expect(
        ctx.db.transaction(async (tx) => {
          await ctx.db.query(statement[0], [...statement[1]], tx);
          expect(Number((await ctx.db.query<{ n: string }>(`SELECT count(*) AS n FROM events WHERE user_id = $1`, [user.id], tx))[0].n)).toBeGreaterThan(before);
          throw new Error('forced rollback');
        }),
      ).rejects.toThrow('forced rollback');
    }
    expect(await count(ctx.db, 'events', 'user_id = $1', [user.id])).toBe(before);
    expect(await eventsOf(user.id, 'credits.adjusted')).toEqual([]);
    expect(await eventsOf(user.id, 'usage.refunded')).toEqual([]);
  });

  it('When the ledger is reconciled after all of this, then it is clean', async () => {
    const res = await request(ctx.app).get('/api/admin/reconcile').set('Authorization', admin.auth);
    expect(res.body.ok).toBe(true);
  });
  it('When an extend with a larger hold takes available credits under a threshold, then credits.low is written by that statement, once', async () => {
    const user = userWithRole('user');
    await request(ctx.app).put('/api/models/events-extend-model').set('Authorization', admin.auth).send({ inputPricePer1M: 1_000_000, outputPricePer1M: 1_000_000 });
    expect((await allocate(user.id, 12)).status).toBe(201);
    const open = await request(ctx.app).post('/api/streaming-sessions/initialize').set('Authorization', user.auth)
      .send({ modelId: 'events-extend-model', estimatedInputTokens: 1, estimatedOutputTokens: 0 });
    expect(open.status).toBe(201);
    expect(types(await eventsOf(user.id))).toEqual(['credits.granted']); // 11 left: still above 10
    const extend = (additionalCredits: number) =>
      request(ctx.app).post('/api/streaming-sessions/extend').set('Authorization', user.auth).send({ sessionId: open.body.sessionId, additionalCredits });
    expect((await extend(4)).status).toBe(200); // 7 left: under 10
    const events = await eventsOf(user.id);
    expect(types(events)).toEqual(['credits.granted', 'credits.low']);
    expect(events[1].data).toEqual({ thresholdCredits: 10, availableCredits: 7 });
    expect((await extend(1)).status).toBe(200); // 6 left: still between 5 and 10, nothing new
    expect(types(await eventsOf(user.id))).toEqual(['credits.granted', 'credits.low']);
  });
});
