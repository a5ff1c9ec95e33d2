import request from 'supertest';
import { createServices } from '../../src/services';
import { startBackgroundJobs } from '../../src/services/background-jobs';
import { StreamingSessionService } from '../../src/services/streaming-session.service';
import { databaseOptionsFrom } from '../../src/config/sequelize';
import { createDatabase, type Database } from '../../src/db/database';
import { createLogger } from '../../src/lib/logger';
import type { Config } from '../../src/config';
import { createTestContext, type TestContext } from '../support/context';
import { availableOf, count, grantDirect, micro } from '../support/db';
import { userWithRole } from '../support/tokens';
import { addTestModel, ledgerOf, ledgerProblems, reconcile, makeOverdue, remainingOf, TEST_MODEL } from './support';

let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext();
  await addTestModel(ctx.db);
});
afterEach(async () => {
  expect(await reconcile(ctx.app)).toMatchObject({ ok: true, discrepancies: [] });
  expect(await ledgerProblems(ctx.db)).toEqual([]);
});
afterAll(() => ctx.close());

const post = (path: string, auth: string, body: object) =>
  request(ctx.app).post(`/api/streaming-sessions/${path}`).set('Authorization', auth).send(body);

async function funded(credits: number) {
  const user = userWithRole('user');
  const lot = await grantDirect(ctx.db, user.id, credits);
  return { ...user, lot };
}

/** Opens a session through HTTP and makes it overdue. */
async function overdueSession(auth: string, body: object): Promise<string> {
  const res = await post('initialize', auth, { modelId: TEST_MODEL, ...body });
  expect(res.status).toBe(201);
  await makeOverdue(ctx.db, 'id = $1', [res.body.sessionId]);
  return res.body.sessionId;
}

/** The sweeper of this test database under another expiry policy. */
const sweeperWith = (policy: Config['SESSION_EXPIRY_POLICY']) =>
  new StreamingSessionService(ctx.db, ctx.services.credits, ctx.services.prices, { ...ctx.config, SESSION_EXPIRY_POLICY: policy });

/** Expires every overdue session (sessions of other tests in this file are never left overdue). */
const sweep = (service = ctx.services.sessions) => service.expireOverdue(1000);

async function sessionRow(id: string) {
  const [row] = await ctx.db.query<Record<string, string>>(
    `SELECT status, used_credits::text AS used, refunded_credits::text AS refunded, unpaid_credits::text AS unpaid FROM streaming_sessions WHERE id = $1`,
    [id],
  );
  return row;
}

async function usageOf(id: string) {
  return ctx.db.query<Record<string, string>>(
    `SELECT credits::text, charged_credits::text AS charged, unpaid_credits::text AS unpaid, input_tokens::text AS input,
            output_tokens::text AS output FROM usage_records WHERE session_id = $1`,
    [id],
  );
}

describe('expiry policies', () => {
  test('When a session with token estimates expires under the default policy, then the estimated input is captured and the rest released', async () => {
    expect(ctx.config.SESSION_EXPIRY_POLICY).toBe('charge_estimated_input');
    const user = await funded(10);
    const id = await overdueSession(user.auth, { estimatedInputTokens: 1000, estimatedOutputTokens: 1000 }); // 1 + 2 credits

    expect(await sweep()).toBe(1);

    expect(await sessionRow(id)).toEqual({ status: 'expired', used: '1000000', refunded: '2000000', unpaid: '0' });
    expect(await ledgerOf(ctx.db, id)).toEqual([
      ['hold', micro(3), user.lot],
      ['capture', micro(1), user.lot],
      ['release', micro(2), user.lot],
    ]);
    expect(await usageOf(id)).toEqual([{ credits: '1000000', charged: '1000000', unpaid: '0', input: '1000', output: '0' }]);
    expect(await availableOf(ctx.db, user.id)).toBe(micro(9));
  });

  test('When a session with a credits-only estimate expires under the default policy, then nothing is charged', async () => {
    const user = await funded(10);
    const id = await overdueSession(user.auth, { estimatedCredits: 3 });
    expect(await sweep()).toBe(1);
    expect(await sessionRow(id)).toEqual({ status: 'expired', used: '0', refunded: '3000000', unpaid: '0' });
    expect(await availableOf(ctx.db, user.id)).toBe(micro(10));
  });

  test('When the policy is release, then the whole hold goes back and a zero usage record is written', async () => {
    const user = await funded(10);
    const id = await overdueSession(user.auth, { estimatedInputTokens: 1000, estimatedOutputTokens: 1000 });
    expect(await sweep(sweeperWith('release'))).toBe(1);
    expect(await sessionRow(id)).toEqual({ status: 'expired', used: '0', refunded: '3000000', unpaid: '0' });
    expect(await usageOf(id)).toEqual([{ credits: '0', charged: '0', unpaid: '0', input: '0', output: '0' }]);
    expect(await availableOf(ctx.db, user.id)).toBe(micro(10));
  });

  test('When the policy is charge_estimate, then the whole hold is captured', async () => {
    const user = await funded(10);
    const id = await overdueSession(user.auth, { estimatedInputTokens: 1000, estimatedOutputTokens: 1000 });
    expect(await sweep(sweeperWith('charge_estimate'))).toBe(1);
    expect(await sessionRow(id)).toEqual({ status: 'expired', used: '3000000', refunded: '0', unpaid: '0' });
    expect(await usageOf(id)).toEqual([{ credits: '3000000', charged: '3000000', unpaid: '0', input: '1000', output: '1000' }]);
    expect(await availableOf(ctx.db, user.id)).toBe(micro(7));
  });

  test('When sessions are not yet overdue, then the sweeper leaves them active', async () => {
    const user = await funded(10);
    const res = await post('initialize', user.auth, { modelId: TEST_MODEL, estimatedCredits: 1, ttlSeconds: 600 });
    expect(await sweep()).toBe(0);
    expect((await sessionRow(res.body.sessionId)).status).toBe('active');
    await post('abort', user.auth, { sessionId: res.body.sessionId });
  });

  test('When an overdue session was not swept yet, then finalize settles it normally', async () => {
    const user = await funded(10);
    const id = await overdueSession(user.auth, { estimatedCredits: 3 });
    const res = await post('finalize', user.auth, { sessionId: id, actualInputTokens: 1000, actualOutputTokens: 0 });
    expect(res.body).toMatchObject({ status: 'completed', usedCredits: 1, refundedCredits: 2 });
    expect(await sweep()).toBe(0);
  });
});

describe('late finalize after expiry', () => {
  test('When real usage exceeds what expiry charged, then the difference is charged and the one usage record is corrected', async () => {
    const user = await funded(10);
    const id = await overdueSession(user.auth, { estimatedInputTokens: 1000, estimatedOutputTokens: 1000 }); // hold 3
    await sweep(); // captures 1

    const res = await post('finalize', user.auth, { sessionId: id, actualInputTokens: 1000, actualOutputTokens: 1500 }); // 4

    expect(res.status).toBe(200);
    expect(res.body).toEqual({ sessionId: id, status: 'completed', allocatedCredits: 3, usedCredits: 4, refundedCredits: 2, unpaidCredits: 0 });
    expect(await availableOf(ctx.db, user.id)).toBe(micro(6));
    expect(await ledgerOf(ctx.db, id)).toEqual([
      ['hold', micro(3), user.lot],
      ['capture', micro(1), user.lot],
      ['release', micro(2), user.lot],
      ['charge', micro(3), user.lot],
    ]);
    expect(await usageOf(id)).toEqual([{ credits: '4000000', charged: '4000000', unpaid: '0', input: '1000', output: '1500' }]);
    const [daily] = await ctx.db.query<{ requests: string; credits: string }>(
      `SELECT requests::text, credits::text FROM usage_daily WHERE user_id = $1`,
      [user.id],
    );
    expect(daily).toEqual({ requests: '1', credits: '4000000' });
  });

  test('When a late finalize is repeated, then it replays and charges nothing more', async () => {
    const user = await funded(10);
    const id = await overdueSession(user.auth, { estimatedCredits: 2 });
    await sweep();
    const first = await post('finalize', user.auth, { sessionId: id, actualInputTokens: 3000, actualOutputTokens: 0 });
    const again = await post('finalize', user.auth, { sessionId: id, actualInputTokens: 3000, actualOutputTokens: 0 });
    expect(again.status).toBe(200);
    expect(again.body).toEqual(first.body);
    expect(await availableOf(ctx.db, user.id)).toBe(micro(7));
  });

  test('When the late cost cannot be covered, then what is available is charged and the rest is unpaid', async () => {
    const user = await funded(3);
    const id = await overdueSession(user.auth, { estimatedInputTokens: 1000, estimatedOutputTokens: 1000 }); // hold 3
    await sweep(); // captures 1, releases 2

    const res = await post('finalize', user.auth, { sessionId: id, actualInputTokens: 0, actualOutputTokens: 5000 }); // 10

    expect(res.body).toEqual({ sessionId: id, status: 'completed', allocatedCredits: 3, usedCredits: 10, refundedCredits: 2, unpaidCredits: 7 });
    expect(await availableOf(ctx.db, user.id)).toBe(0n);
    expect(await usageOf(id)).toEqual([{ credits: '10000000', charged: '3000000', unpaid: '7000000', input: '0', output: '5000' }]);
  });

  test('When real usage is below what expiry charged, then the difference is refunded as adjust rows to the lot it was captured from', async () => {
    const user = await funded(10);
    const id = await overdueSession(user.auth, { estimatedInputTokens: 2000, estimatedOutputTokens: 1000 }); // hold 4
    await sweep(sweeperWith('charge_estimate')); // captures 4

    const res = await post('finalize', user.auth, { sessionId: id, actualInputTokens: 500, actualOutputTokens: 0 }); // 0.5

    expect(res.body).toEqual({ sessionId: id, status: 'completed', allocatedCredits: 4, usedCredits: 0.5, refundedCredits: 3.5, unpaidCredits: 0 });
    expect(await availableOf(ctx.db, user.id)).toBe(micro(9.5));
    expect(await ledgerOf(ctx.db, id)).toEqual([
      ['hold', micro(4), user.lot],
      ['capture', micro(4), user.lot],
      ['adjust', micro(3.5), user.lot],
    ]);
    expect(await usageOf(id)).toEqual([{ credits: '500000', charged: '500000', unpaid: '0', input: '500', output: '0' }]);
  });

  test('When a refund falls on a lot that has expired since, then it is expired too, not revived', async () => {
    const user = userWithRole('user');
    const soon = await grantDirect(ctx.db, user.id, 2, new Date(Date.now() + 3_600_000));
    const never = await grantDirect(ctx.db, user.id, 10);
    const id = await overdueSession(user.auth, { estimatedCredits: 4 }); // 2 from soon, 2 from never
    await sweep(sweeperWith('charge_estimate'));
    await ctx.db.query(`UPDATE credit_allocations SET expires_at = now() - interval '1 minute' WHERE id = $1 RETURNING 1`, [soon]);

    // Real cost 1: refund 3, last-captured lot first: 2 to `never`, then 1 to `soon` (expired).
    const res = await post('finalize', user.auth, { sessionId: id, actualInputTokens: 1000, actualOutputTokens: 0 });

    expect(res.body.usedCredits).toBe(1);
    expect((await ledgerOf(ctx.db, id)).slice(4)).toEqual([
      ['adjust', micro(2), never],
      ['adjust', micro(1), soon],
      ['expire', micro(1), soon],
    ]);
    expect(await remainingOf(ctx.db, soon)).toBe(0n);
    expect(await remainingOf(ctx.db, never)).toBe(micro(10));
  });

  test('When an expired session is aborted without token counts, then it ends aborted and its charge stands', async () => {
    const user = await funded(10);
    const id = await overdueSession(user.auth, { estimatedInputTokens: 1000, estimatedOutputTokens: 1000 });
    await sweep();
    const res = await post('abort', user.auth, { sessionId: id, reason: 'late' });
    expect(res.body).toEqual({ sessionId: id, status: 'aborted', allocatedCredits: 3, usedCredits: 1, refundedCredits: 2, unpaidCredits: 0 });
    expect(await availableOf(ctx.db, user.id)).toBe(micro(9));
    expect(await usageOf(id)).toEqual([{ credits: '1000000', charged: '1000000', unpaid: '0', input: '1000', output: '0' }]);
  });
});

describe('several sweepers at once', () => {
  /** N service instances with their own connection pools on the test database. */
  function instances(n: number): Array<{ db: Database; sessions: StreamingSessionService }> {
    return Array.from({ length: n }, () => {
      const db = createDatabase(
        databaseOptionsFrom(ctx.config, ctx.databaseUrl, { poolMax: 4, statementTimeoutMs: 30_000, lockTimeoutMs: 3_000, acquireTimeoutMs: 30_000 }),
      );
      return { db, sessions: createServices(db, ctx.config).sessions };
    });
  }

  async function sweepUntilDone(sessions: StreamingSessionService): Promise<number> {
    let total = 0;
    for (;;) {
      const n = await sessions.expireOverdue(20);
      total += n;
      // Nothing claimable: done when nothing overdue is left (the rest may be locked by another sweeper).
      if (n === 0 && (await count(ctx.db, 'streaming_sessions', `status = 'active' AND expires_at < now()`)) === 0) return total;
    }
  }

  /** 50 users x 10 sessions of 1 credit (token estimates of 1000 input tokens: expiry charges it all). */
  async function openOverdue(perUser: number, users: number) {
    const owners = await Promise.all(Array.from({ length: users }, () => funded(perUser)));
    const ids: string[] = [];
    for (const owner of owners) {
      const opened = await Promise.all(
        Array.from({ length: perUser }, () =>
          ctx.services.sessions.initializeSession(
            { userId: owner.id, role: 'user' },
            { modelId: TEST_MODEL, estimatedInputTokens: 500, estimatedOutputTokens: 250 }, // 0.5 + 0.5
          ),
        ),
      );
      ids.push(...opened.map((r) => r.body.sessionId));
    }
    await makeOverdue(ctx.db, `id = ANY($1)`, [ids]);
    return { owners, ids };
  }

  test('When three sweepers run at once on 500 overdue sessions, then each session is expired exactly once and no sweeper fails', async () => {
    const { owners, ids } = await openOverdue(10, 50);
    const sweepers = instances(3);
    try {
      const counts = await Promise.all(sweepers.map((s) => sweepUntilDone(s.sessions)));

      expect(counts.reduce((a, b) => a + b, 0)).toBe(500);
      expect(counts.filter((n) => n > 0).length).toBeGreaterThan(1);
      expect(await count(ctx.db, 'streaming_sessions', `id = ANY($1) AND status = 'expired'`, [ids])).toBe(500);
      expect(await count(ctx.db, 'usage_records', `session_id = ANY($1)`, [ids])).toBe(500);
      expect(await count(ctx.db, 'credit_transactions', `session_id = ANY($1) AND type = 'capture'`, [ids])).toBe(500);
      expect(await count(ctx.db, 'credit_transactions', `session_id = ANY($1) AND type = 'release'`, [ids])).toBe(500);
      // Each 1-credit hold: 0.5 (estimated input) captured, 0.5 released.
      for (const owner of owners) expect(await availableOf(ctx.db, owner.id)).toBe(micro(5));
    } finally {
      await Promise.all(sweepers.map((s) => s.db.close()));
    }
  });

  test('When sweepers race with finalizes of the same overdue sessions, then each session resolves once and no request fails', async () => {
    const { ids } = await openOverdue(10, 10);
    const sweepers = instances(3);
    const toFinalize = ids.filter((_, i) => i % 2 === 0);
    // Session ids are scoped to their user: the admin names each session's owner.
    const owners = new Map(
      (await ctx.db.query<{ id: string; user_id: string }>(`SELECT id, user_id FROM streaming_sessions WHERE id = ANY($1)`, [ids])).map((r) => [r.id, r.user_id]),
    );
    try {
      const [finalized] = await Promise.all([
        Promise.all(
          toFinalize.map((id) =>
            ctx.services.sessions.finalizeSession({ userId: 'admin', role: 'admin' }, { sessionId: id, userId: owners.get(id), actualInputTokens: 1000, actualOutputTokens: 0 }),
          ),
        ),
        ...sweepers.map((s) => sweepUntilDone(s.sessions)),
      ]);

      expect(finalized.every((r) => r.effect === 'done' && r.body.usedCredits === 1)).toBe(true);
      expect(await count(ctx.db, 'streaming_sessions', `id = ANY($1) AND status = 'completed' AND used_credits = 1000000`, [toFinalize])).toBe(50);
      expect(await count(ctx.db, 'streaming_sessions', `id = ANY($1) AND status = 'expired'`, [ids])).toBe(50);
      expect(await count(ctx.db, 'usage_records', `session_id = ANY($1)`, [ids])).toBe(100);
    } finally {
      await Promise.all(sweepers.map((s) => s.db.close()));
    }
  });
});

describe('background job', () => {
  test('When the background jobs run, then overdue sessions are expired without anyone calling the sweeper', async () => {
    const user = await funded(10);
    const id = await overdueSession(user.auth, { estimatedCredits: 2 });
    const jobs = startBackgroundJobs(ctx.services, 20, createLogger('silent'));
    try {
      for (let i = 0; i < 250 && (await sessionRow(id)).status === 'active'; i++) await new Promise((r) => setTimeout(r, 20));
    } finally {
      await jobs.stop();
    }
    expect((await sessionRow(id)).status).toBe('expired');
  });
});
