import request from 'supertest';
import { createTestContext, type TestContext } from '../support/context';
import { availableOf, count, micro } from '../support/db';
import { userWithRole } from '../support/tokens';
import { allocate, discrepancies, holdForSession, lotsOf } from '../credits/helpers';
import { adjust, ledgerOf, recordState, recordUsage, refund, revoke, rollupOf } from './helpers';

let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext();
});
afterAll(() => ctx.close());

const supervisor = userWithRole('supervisor');
const admin = userWithRole('admin');

const newUser = () => userWithRole('user');

describe('POST /api/credits/adjust', () => {
  test('When a supervisor adjusts by +12.5 with a reason, then a new lot of 12.5 is added with one adjust row naming the actor and reason', async () => {
    const user = newUser();
    const res = await adjust(ctx, supervisor.auth, { userId: user.id, credits: 12.5, reason: 'goodwill' });
    expect(res.status).toBe(201);
    expect(res.body.allocation).toMatchObject({ totalCredits: 12.5, remainingCredits: 12.5, allocatedBy: supervisor.id });
    expect(res.body.balance.availableCredits).toBe(12.5);
    expect(res.body).toMatchObject({ userId: user.id, credits: 12.5, reason: 'goodwill', settledCredits: 0 });
    const ledger = await ledgerOf(ctx, user.id);
    expect(ledger).toEqual([
      expect.objectContaining({ type: 'adjust', amount: micro(12.5), allocationId: res.body.allocation.id, actorId: supervisor.id, note: 'goodwill' }),
    ]);
    expect(await discrepancies(ctx)).toEqual([]);
  });

  test('When a negative adjustment is covered, then it takes from lots in consumption order (soonest expiry first) as negative adjust rows', async () => {
    const user = newUser();
    const never = (await allocate(ctx, supervisor.auth, { userId: user.id, credits: 10 })).body.allocation.id;
    const soon = (await allocate(ctx, supervisor.auth, { userId: user.id, credits: 4, expiresInDays: 2 })).body.allocation.id;
    const res = await adjust(ctx, admin.auth, { userId: user.id, credits: '-6.5', reason: 'clawback' });
    expect(res.status).toBe(200);
    expect(res.body.allocation).toBeNull();
    expect(res.body.credits).toBe(-6.5);
    expect(res.body.balance.availableCredits).toBe(7.5);
    const lots = Object.fromEntries((await lotsOf(ctx, user.id)).map((lot) => [lot.id, lot.remaining]));
    expect(lots).toEqual({ [never]: micro(7.5), [soon]: 0n });
    const adjustments = (await ledgerOf(ctx, user.id)).filter((row) => row.type === 'adjust');
    expect(adjustments).toEqual([
      expect.objectContaining({ amount: -micro(4), allocationId: soon, actorId: admin.id, note: 'clawback' }),
      expect.objectContaining({ amount: -micro(2.5), allocationId: never }),
    ]);
    expect(await discrepancies(ctx)).toEqual([]);
  });

  test('When a negative adjustment is not covered, then 402 INSUFFICIENT_CREDITS and nothing changes', async () => {
    const user = newUser();
    await allocate(ctx, supervisor.auth, { userId: user.id, credits: 5 });
    const before = await count(ctx.db, 'credit_transactions', 'user_id = $1', [user.id]);
    const res = await adjust(ctx, supervisor.auth, { userId: user.id, credits: -5.000001, reason: 'too much' });
    expect(res.status).toBe(402);
    expect(res.body.error).toMatchObject({ code: 'INSUFFICIENT_CREDITS', details: { requiredCredits: 5.000001, availableCredits: 5 } });
    expect(await count(ctx.db, 'credit_transactions', 'user_id = $1', [user.id])).toBe(before);
    expect(await availableOf(ctx.db, user.id)).toBe(micro(5));
  });

  test('When the body is invalid or the caller is a user, then 400 / 403 and nothing is written', async () => {
    const user = newUser();
    const bad = [
      { userId: user.id, credits: 0, reason: 'zero' },
      { userId: user.id, credits: 1 },
      { userId: user.id, credits: 1.0000001, reason: 'x' },
      { userId: user.id, credits: 1, reason: '' },
      { userId: user.id, credits: 1, reason: 'nul\u0000' },
      { userId: user.id, credits: -1, reason: 'x', expiresAt: new Date(Date.now() + 86_400_000).toISOString() },
      { userId: user.id, credits: 1, reason: 'x', expiresAt: new Date(Date.now() - 1000).toISOString() },
      { userId: user.id, credits: '-1000000000.5', reason: 'x' },
      { userId: user.id, credits: 1, reason: 'x', extra: true },
    ];
    for (const body of bad) {
      const res = await adjust(ctx, supervisor.auth, body);
      expect({ body, status: res.status, code: res.body.error?.code }).toEqual({ body, status: 400, code: 'VALIDATION_ERROR' });
    }
    const forbidden = await adjust(ctx, user.auth, { userId: user.id, credits: 1, reason: 'self-service' });
    expect(forbidden.status).toBe(403);
    expect(await count(ctx.db, 'credit_transactions', 'user_id = $1', [user.id])).toBe(0);
  });

  test('When the same Idempotency-Key is sent twice, then the second replays the first (one lot); a different body is 422', async () => {
    const user = newUser();
    const first = await adjust(ctx, supervisor.auth, { userId: user.id, credits: 3, reason: 'r' }, 'adj-1');
    const second = await adjust(ctx, supervisor.auth, { userId: user.id, credits: 3, reason: 'r' }, 'adj-1');
    expect(second.status).toBe(201);
    expect(second.headers['idempotent-replayed']).toBe('true');
    expect(second.body).toEqual(first.body);
    expect((await lotsOf(ctx, user.id)).length).toBe(1);
    const reused = await adjust(ctx, supervisor.auth, { userId: user.id, credits: 4, reason: 'r' }, 'adj-1');
    expect(reused.status).toBe(422);
  });

  test('When a negative adjustment names a user never seen, then 404', async () => {
    const res = await adjust(ctx, supervisor.auth, { userId: `ghost-${Date.now()}`, credits: -1, reason: 'x' });
    expect(res.status).toBe(404);
  });
});

describe('POST /api/credits/allocations/:id/revoke', () => {
  test('When a lot of 100 has 30 held by an active session, then revoking it voids 70 and reports 30 held', async () => {
    const user = newUser();
    const lot = (await allocate(ctx, supervisor.auth, { userId: user.id, credits: 100 })).body.allocation.id;
    await holdForSession(ctx, user.id, `s-${user.id}`, micro(30));
    const res = await revoke(ctx, supervisor.auth, lot, { reason: 'granted by mistake' });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ allocationId: lot, userId: user.id, revokedCredits: 70, heldCredits: 30 });
    expect(res.body.allocation.remainingCredits).toBe(0);
    expect(await availableOf(ctx.db, user.id)).toBe(0n);
    const rows = (await ledgerOf(ctx, user.id)).filter((r) => r.type === 'revoke');
    expect(rows).toEqual([expect.objectContaining({ amount: micro(70), allocationId: lot, actorId: supervisor.id, note: 'granted by mistake' })]);
    expect(await discrepancies(ctx)).toEqual([]);
  });

  test('When part of a lot is revoked, then only that part goes; asking for more than is left revokes what is left', async () => {
    const user = newUser();
    const lot = (await allocate(ctx, supervisor.auth, { userId: user.id, credits: 10 })).body.allocation.id;
    const part = await revoke(ctx, admin.auth, lot, { reason: 'part', credits: 2.5 });
    expect(part.body).toMatchObject({ revokedCredits: 2.5, heldCredits: 0 });
    const rest = await revoke(ctx, admin.auth, lot, { reason: 'rest', credits: 100 });
    expect(rest.body).toMatchObject({ revokedCredits: 7.5, heldCredits: 0 });
    const again = await revoke(ctx, admin.auth, lot, { reason: 'again' });
    expect(again.body).toMatchObject({ revokedCredits: 0, heldCredits: 0 });
    expect((await ledgerOf(ctx, user.id)).filter((r) => r.type === 'revoke').map((r) => r.amount)).toEqual([micro(2.5), micro(7.5)]);
    expect(await discrepancies(ctx)).toEqual([]);
  });

  test('When the lot is unknown or the id malformed, then 404 / 400; a user gets 403', async () => {
    expect((await revoke(ctx, supervisor.auth, '999999999', { reason: 'x' })).status).toBe(404);
    expect((await revoke(ctx, supervisor.auth, 'abc', { reason: 'x' })).status).toBe(400);
    expect((await revoke(ctx, supervisor.auth, '99999999999999999999999', { reason: 'x' })).status).toBe(400);
    expect((await revoke(ctx, supervisor.auth, '1', {})).status).toBe(400);
    expect((await revoke(ctx, newUser().auth, '1', { reason: 'x' })).status).toBe(403);
  });

  test('When the same key is replayed, then nothing more is revoked', async () => {
    const user = newUser();
    const lot = (await allocate(ctx, supervisor.auth, { userId: user.id, credits: 10 })).body.allocation.id;
    const first = await revoke(ctx, supervisor.auth, lot, { reason: 'x', credits: 1 }, 'rev-1');
    const second = await revoke(ctx, supervisor.auth, lot, { reason: 'x', credits: 1 }, 'rev-1');
    expect(second.headers['idempotent-replayed']).toBe('true');
    expect(second.body).toEqual(first.body);
    expect(await availableOf(ctx.db, user.id)).toBe(micro(9));
  });
});

describe('POST /api/usage/records/:id/refund', () => {
  test('When a record of 15 was charged 10 and left 5 unpaid, then a refund of 7 forgives 5 and returns 2; the rest later returns 8; never more', async () => {
    const user = newUser();
    const lot = (await allocate(ctx, supervisor.auth, { userId: user.id, credits: 10 })).body.allocation.id;
    const recorded = await recordUsage(ctx, supervisor.auth, { userId: user.id, credits: 15 });
    expect(recorded.body).toMatchObject({ chargedCredits: 10, unpaidCredits: 5 });
    const id = recorded.body.usageRecord.id;

    const first = await refund(ctx, supervisor.auth, id, { reason: 'bad answer', credits: 7 });
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({ id, credits: 15, chargedCredits: 8, unpaidCredits: 0, refundedCredits: 7, forgivenCredits: 5, returnedCredits: 2 });
    expect(await availableOf(ctx.db, user.id)).toBe(micro(2));
    expect(await rollupOf(ctx, user.id)).toEqual({ credits: micro(8), unpaid: 0n });

    const tooMuch = await refund(ctx, supervisor.auth, id, { reason: 'again', credits: 8.000001 });
    expect(tooMuch.status).toBe(400);
    expect(tooMuch.body.error.code).toBe('VALIDATION_ERROR');

    const rest = await refund(ctx, supervisor.auth, id, { reason: 'the rest' });
    expect(rest.body).toMatchObject({ chargedCredits: 0, unpaidCredits: 0, refundedCredits: 15, forgivenCredits: 0, returnedCredits: 8 });
    expect(await availableOf(ctx.db, user.id)).toBe(micro(10));
    expect(await recordState(ctx, id)).toEqual({ credits: micro(15), charged: 0n, unpaid: 0n, refunded: micro(15) });
    expect(await rollupOf(ctx, user.id)).toEqual({ credits: 0n, unpaid: 0n });

    const nothingLeft = await refund(ctx, supervisor.auth, id, { reason: 'once more' });
    expect(nothingLeft.body).toMatchObject({ refundedCredits: 15, forgivenCredits: 0, returnedCredits: 0 });

    const rows = (await ledgerOf(ctx, user.id)).filter((r) => r.type === 'forgive' || r.type === 'refund');
    expect(rows).toEqual([
      expect.objectContaining({ type: 'forgive', amount: micro(5), allocationId: null, usageRecordId: id, actorId: supervisor.id, note: 'bad answer' }),
      expect.objectContaining({ type: 'refund', amount: micro(2), allocationId: lot, originAllocationId: lot, usageRecordId: id }),
      expect.objectContaining({ type: 'refund', amount: micro(8), allocationId: lot, originAllocationId: lot, note: 'the rest' }),
    ]);
    expect(await discrepancies(ctx)).toEqual([]);
  });

  test('When the lots that paid a record have expired, then the refund goes into a new lot with their latest expiry (expired at once when that is past)', async () => {
    const user = newUser();
    const a = (await allocate(ctx, supervisor.auth, { userId: user.id, credits: 3, expiresInDays: 1 })).body.allocation.id;
    const b = (await allocate(ctx, supervisor.auth, { userId: user.id, credits: 3, expiresInDays: 2 })).body.allocation.id;
    const id = (await recordUsage(ctx, supervisor.auth, { userId: user.id, credits: 5 })).body.usageRecord.id;
    // Both lots expire (a before b); b's expiry is the latest.
    await ctx.db.query(`UPDATE credit_allocations SET expires_at = now() - interval '2 hours' WHERE id = $1 RETURNING 1`, [a]);
    await ctx.db.query(`UPDATE credit_allocations SET expires_at = now() - interval '1 hour' WHERE id = $1 RETURNING 1`, [b]);
    const res = await refund(ctx, supervisor.auth, id, { reason: 'expired lots' });
    expect(res.body).toMatchObject({ refundedCredits: 5, returnedCredits: 5 });
    expect(await availableOf(ctx.db, user.id)).toBe(0n);
    const [newLot] = await ctx.db.query<{ id: string; total: string; remaining: string; same_expiry: boolean }>(
      `SELECT n.id::text, n.total_credits::text AS total, n.remaining_credits::text AS remaining, n.expires_at = b.expires_at AS same_expiry
         FROM credit_allocations n, credit_allocations b WHERE n.user_id = $1 AND n.id NOT IN ($2, $3) AND b.id = $3`,
      [user.id, a, b],
    );
    expect(newLot).toMatchObject({ total: String(micro(5)), remaining: '0', same_expiry: true });
    const rows = (await ledgerOf(ctx, user.id)).filter((r) => r.allocationId === newLot.id);
    expect(rows.map((r) => [r.type, r.amount, r.originAllocationId])).toEqual([
      ['refund', micro(2), b],
      ['refund', micro(3), a],
      ['expire', micro(5), null],
    ]);
    expect(await discrepancies(ctx)).toEqual([]);
  });

  test('When one paying lot expired and another still lives, then the live one gets its credits back and the expired share goes to a new lot that lives as long', async () => {
    const user = newUser();
    const soon = (await allocate(ctx, supervisor.auth, { userId: user.id, credits: 3, expiresInDays: 1 })).body.allocation.id;
    const never = (await allocate(ctx, supervisor.auth, { userId: user.id, credits: 3 })).body.allocation.id;
    const id = (await recordUsage(ctx, supervisor.auth, { userId: user.id, credits: 5 })).body.usageRecord.id;
    await ctx.db.query(`UPDATE credit_allocations SET expires_at = now() - interval '1 hour' WHERE id = $1 RETURNING 1`, [soon]);
    const res = await refund(ctx, supervisor.auth, id, { reason: 'mixed' });
    expect(res.body.returnedCredits).toBe(5);
    // never: 1 left + 2 back; the 3 from the expired lot go to a new lot without expiry.
    expect(await availableOf(ctx.db, user.id)).toBe(micro(6));
    const lots = await ctx.db.query<{ id: string; remaining: string; expires_at: Date | null }>(
      `SELECT id::text, remaining_credits::text AS remaining, expires_at FROM credit_allocations WHERE user_id = $1 ORDER BY id`,
      [user.id],
    );
    expect(lots.map((l) => [l.id === soon ? 'soon' : l.id === never ? 'never' : 'new', l.remaining, l.expires_at])).toEqual([
      ['soon', '0', expect.any(Date)],
      ['never', String(micro(3)), null],
      ['new', String(micro(3)), null],
    ]);
    expect(await discrepancies(ctx)).toEqual([]);
  });

  test('When a streaming session record is refunded, then captured credits go back to the lots the hold drew from', async () => {
    const user = newUser();
    await allocate(ctx, supervisor.auth, { userId: user.id, credits: 10 });
    const init = await request(ctx.app)
      .post('/api/streaming-sessions/initialize')
      .set('Authorization', user.auth)
      .send({ modelId: 'gpt-4o', estimatedInputTokens: 1000, estimatedOutputTokens: 1000 });
    expect(init.status).toBe(201);
    const fin = await request(ctx.app)
      .post('/api/streaming-sessions/finalize')
      .set('Authorization', user.auth)
      .send({ sessionId: init.body.sessionId, actualInputTokens: 1000, actualOutputTokens: 500 });
    expect(fin.status).toBe(200);
    const [record] = await ctx.db.query<{ id: string }>(`SELECT id::text FROM usage_records WHERE session_id = $1`, [init.body.sessionId]);
    const res = await refund(ctx, admin.auth, record.id, { reason: 'outage' });
    expect(res.status).toBe(200);
    expect(res.body.refundedCredits).toBe(fin.body.usedCredits);
    expect(await availableOf(ctx.db, user.id)).toBe(micro(10));
    expect(await discrepancies(ctx)).toEqual([]);
  });

  test('When the record is unknown, the id malformed or the caller a user, then 404 / 400 / 403; the same key on another record is 422', async () => {
    const user = newUser();
    expect((await refund(ctx, supervisor.auth, '999999999', { reason: 'x' })).status).toBe(404);
    expect((await refund(ctx, supervisor.auth, '0', { reason: 'x' })).status).toBe(400);
    expect((await refund(ctx, supervisor.auth, '1', { reason: 'x', credits: -1 })).status).toBe(400);
    expect((await refund(ctx, user.auth, '1', { reason: 'x' })).status).toBe(403);
    await allocate(ctx, supervisor.auth, { userId: user.id, credits: 10 });
    const one = (await recordUsage(ctx, supervisor.auth, { userId: user.id, credits: 1 })).body.usageRecord.id;
    const two = (await recordUsage(ctx, supervisor.auth, { userId: user.id, credits: 1 })).body.usageRecord.id;
    expect((await refund(ctx, supervisor.auth, one, { reason: 'x' }, 'ref-1')).status).toBe(200);
    expect((await refund(ctx, supervisor.auth, one, { reason: 'x' }, 'ref-1')).headers['idempotent-replayed']).toBe('true');
    expect((await refund(ctx, supervisor.auth, two, { reason: 'x' }, 'ref-1')).status).toBe(422);
    expect((await recordState(ctx, two)).refunded).toBe(0n);
  });
});

describe('debt settlement', () => {
  test('When a user with unpaid usage is granted credits, then the oldest unpaid record is paid first with charge rows linked to it', async () => {
    const user = newUser();
    const older = (await recordUsage(ctx, supervisor.auth, { userId: user.id, credits: 4 })).body.usageRecord.id;
    const newer = (await recordUsage(ctx, supervisor.auth, { userId: user.id, credits: 3 })).body.usageRecord.id;
    const before = await request(ctx.app).get(`/api/credits/balance/${user.id}`).set('Authorization', supervisor.auth);
    expect(before.body).toMatchObject({ availableCredits: 0, unpaidCredits: 7 });
    const grant = await allocate(ctx, supervisor.auth, { userId: user.id, credits: 5 });
    expect(grant.body.balance).toMatchObject({ availableCredits: 0, unpaidCredits: 2 });
    expect(await recordState(ctx, older)).toMatchObject({ charged: micro(4), unpaid: 0n });
    expect(await recordState(ctx, newer)).toMatchObject({ charged: micro(1), unpaid: micro(2) });
    expect(await rollupOf(ctx, user.id)).toEqual({ credits: micro(7), unpaid: micro(2) });
    const charges = (await ledgerOf(ctx, user.id)).filter((r) => r.type === 'charge');
    expect(charges.map((c) => [c.usageRecordId, c.amount, c.allocationId])).toEqual([
      [older, micro(4), grant.body.allocation.id],
      [newer, micro(1), grant.body.allocation.id],
    ]);
    const adjusted = await adjust(ctx, supervisor.auth, { userId: user.id, credits: 10, reason: 'top-up' });
    expect(adjusted.body).toMatchObject({ settledCredits: 2 });
    expect(adjusted.body.balance).toMatchObject({ availableCredits: 8, unpaidCredits: 0 });
    expect(await recordState(ctx, newer)).toMatchObject({ charged: micro(3), unpaid: 0n });
    expect(await rollupOf(ctx, user.id)).toEqual({ credits: micro(7), unpaid: 0n });
    expect(await discrepancies(ctx)).toEqual([]);
  });

  test('When SETTLE_UNPAID_ON_GRANT=false, then grants leave unpaid usage alone', async () => {
    const other = await createTestContext({ SETTLE_UNPAID_ON_GRANT: 'false' });
    try {
      const user = newUser();
      const id = (await recordUsage(other, supervisor.auth, { userId: user.id, credits: 4 })).body.usageRecord.id;
      await allocate(other, supervisor.auth, { userId: user.id, credits: 5 });
      await adjust(other, supervisor.auth, { userId: user.id, credits: 5, reason: 'x' });
      expect(await recordState(other, id)).toMatchObject({ charged: 0n, unpaid: micro(4) });
      expect(await availableOf(other.db, user.id)).toBe(micro(10));
    } finally {
      await other.close();
    }
  });

  test('When credits are released from a hold, then they do not settle unpaid usage', async () => {
    const user = newUser();
    await allocate(ctx, supervisor.auth, { userId: user.id, credits: 2 });
    const init = await request(ctx.app)
      .post('/api/streaming-sessions/initialize')
      .set('Authorization', user.auth)
      .send({ modelId: 'gpt-4o', estimatedCredits: 2 });
    expect(init.status).toBe(201);
    const id = (await recordUsage(ctx, supervisor.auth, { userId: user.id, credits: 1 })).body.usageRecord.id;
    expect(await recordState(ctx, id)).toMatchObject({ unpaid: micro(1) });
    await request(ctx.app).post('/api/streaming-sessions/abort').set('Authorization', user.auth).send({ sessionId: init.body.sessionId });
    expect(await recordState(ctx, id)).toMatchObject({ unpaid: micro(1) });
    expect(await availableOf(ctx.db, user.id)).toBe(micro(2));
  });
});

describe('concurrency', () => {
  test('When 14 partial refunds of 1 race on a record of 10, then exactly 10 succeed, the rest get 400, and reconcile is clean', async () => {
    const user = newUser();
    await allocate(ctx, supervisor.auth, { userId: user.id, credits: 10 });
    const id = (await recordUsage(ctx, supervisor.auth, { userId: user.id, credits: 10 })).body.usageRecord.id;
    const results = await Promise.all(Array.from({ length: 14 }, () => refund(ctx, supervisor.auth, id, { reason: 'race', credits: 1 })));
    const statuses = results.map((r) => r.status).sort();
    expect(statuses).toEqual([...Array(10).fill(200), ...Array(4).fill(400)]);
    expect(await recordState(ctx, id)).toEqual({ credits: micro(10), charged: 0n, unpaid: 0n, refunded: micro(10) });
    expect(await availableOf(ctx.db, user.id)).toBe(micro(10));
    expect(await discrepancies(ctx)).toEqual([]);
  });

  test('When 16 adjustments of -1 race with 8 revokes of 0.5 on a balance of 10, then no lot goes negative and every credit is accounted for', async () => {
    const user = newUser();
    const lot = (await allocate(ctx, supervisor.auth, { userId: user.id, credits: 10 })).body.allocation.id;
    const results = await Promise.all([
      ...Array.from({ length: 16 }, () => adjust(ctx, supervisor.auth, { userId: user.id, credits: -1, reason: 'race' })),
      ...Array.from({ length: 8 }, () => revoke(ctx, supervisor.auth, lot, { reason: 'race', credits: 0.5 })),
    ]);
    const adjusted = results.slice(0, 16).filter((r) => r.status === 200).length;
    expect(results.slice(0, 16).every((r) => r.status === 200 || r.status === 402)).toBe(true);
    const revoked = results.slice(16).reduce((sum, r) => sum + micro(r.body.revokedCredits), 0n);
    expect(micro(adjusted) + revoked).toBe(micro(10) - (await availableOf(ctx.db, user.id)));
    expect(await availableOf(ctx.db, user.id)).toBeLessThan(micro(1));
    expect(await discrepancies(ctx)).toEqual([]);
  });
});

describe('statistics and CSV show refunds', () => {
  test('When a record of 6 is refunded by 2.5, then stats count 3.5 credits and 2.5 refunded, system stats too, and the CSV has the refunded column', async () => {
    const user = newUser();
    await allocate(ctx, supervisor.auth, { userId: user.id, credits: 4 });
    const id = (await recordUsage(ctx, supervisor.auth, { userId: user.id, credits: 6 })).body.usageRecord.id;
    const systemBefore = (await request(ctx.app).get('/api/usage/system-stats').set('Authorization', admin.auth)).body;
    await refund(ctx, supervisor.auth, id, { reason: 'partial', credits: 2.5 });

    const stats = await request(ctx.app).get(`/api/usage/stats/${user.id}`).set('Authorization', supervisor.auth);
    expect(stats.body.totals).toMatchObject({ requests: 1, credits: 3.5, unpaidCredits: 0, refundedCredits: 2.5 });
    expect(stats.body.byService).toEqual([expect.objectContaining({ service: 'chat', credits: 3.5, refundedCredits: 2.5 })]);
    expect(stats.body.byModel).toEqual([expect.objectContaining({ modelId: null, credits: 3.5, refundedCredits: 2.5 })]);
    expect(stats.body.daily.reduce((sum: number, d: { credits: number }) => sum + d.credits, 0)).toBe(3.5);

    const system = (await request(ctx.app).get('/api/usage/system-stats').set('Authorization', admin.auth)).body;
    expect(system.totals.refundedCredits - systemBefore.totals.refundedCredits).toBe(2.5);
    expect(system.totals.credits - systemBefore.totals.credits).toBeCloseTo(-2.5, 6);
    expect(system.credits.refunded - systemBefore.credits.refunded).toBe(2.5);
    expect(system.credits.unpaid - systemBefore.credits.unpaid).toBeCloseTo(-2, 6);

    const csv = await request(ctx.app).get('/api/usage/records').query({ format: 'csv', userId: user.id }).set('Authorization', supervisor.auth);
    const [header, line] = csv.text.split('\r\n');
    const columns = header.split(',');
    const values = line.split(',');
    expect(values[columns.indexOf('credits')]).toBe('6');
    expect(values[columns.indexOf('charged_credits')]).toBe('3.5');
    expect(values[columns.indexOf('unpaid_credits')]).toBe('0');
    expect(values[columns.indexOf('refunded_credits')]).toBe('2.5');
  });
});
