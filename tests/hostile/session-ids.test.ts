import request from 'supertest';
import { createTestContext, type TestContext } from '../support/context';
import { availableOf, count, grantDirect, micro } from '../support/db';
import { userWithRole } from '../support/tokens';
import { addTestModel, ledgerProblems, reconcile, TEST_MODEL } from '../sessions/support';

/**
 * Issue 12, item 2: session ids are scoped to their user. The review's squatting attack (a user without
 * credits opens "req-123" so that the victim's initialize gets 409) must not work, and no answer may reveal
 * that another user's session exists.
 */
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

async function funded(credits: number, role: 'user' | 'admin' = 'user') {
  const user = userWithRole(role);
  if (credits > 0) await grantDirect(ctx.db, user.id, credits);
  return user;
}

async function sessionRow(userId: string, id: string) {
  const [row] = await ctx.db.query<{ status: string; allocated: string }>(
    `SELECT status, allocated_credits::text AS allocated FROM streaming_sessions WHERE user_id = $1 AND id = $2`,
    [userId, id],
  );
  return row;
}

describe('Session ids are scoped per user', () => {
  test('When an attacker without credits squats an id first, then the victim opens the same id normally (201) and holds their own credits', async () => {
    const attacker = await funded(0);
    const victim = await funded(10);
    const squat = await post('initialize', attacker.auth, { sessionId: 'req-123', modelId: TEST_MODEL, estimatedInputTokens: 0, estimatedOutputTokens: 0 });
    expect(squat.status).toBe(201);

    const res = await post('initialize', victim.auth, { sessionId: 'req-123', modelId: TEST_MODEL, estimatedCredits: 4 });

    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ sessionId: 'req-123', status: 'active', allocatedCredits: 4 });
    expect(await availableOf(ctx.db, victim.id)).toBe(micro(6));
    expect(await count(ctx.db, 'streaming_sessions', `id = 'req-123'`)).toBe(2);
  });

  test("When two users finalize and abort their own sessions with the same id, then each settles only their own", async () => {
    const alice = await funded(10);
    const bob = await funded(10);
    for (const u of [alice, bob]) expect((await post('initialize', u.auth, { sessionId: 'shared', modelId: TEST_MODEL, estimatedCredits: 5 })).status).toBe(201);

    const fin = await post('finalize', alice.auth, { sessionId: 'shared', actualInputTokens: 1000, actualOutputTokens: 0 });
    expect(fin.status).toBe(200);
    expect(fin.body).toMatchObject({ status: 'completed', usedCredits: 1, refundedCredits: 4 });
    expect(await sessionRow(alice.id, 'shared')).toMatchObject({ status: 'completed' });
    expect(await sessionRow(bob.id, 'shared')).toMatchObject({ status: 'active' });

    const abort = await post('abort', bob.auth, { sessionId: 'shared' });
    expect(abort.status).toBe(200);
    expect(abort.body.status).toBe('aborted');
    expect(await availableOf(ctx.db, alice.id)).toBe(micro(9));
    expect(await availableOf(ctx.db, bob.id)).toBe(micro(10));
    expect(await count(ctx.db, 'usage_records', `session_id = 'shared'`)).toBe(2);
  });

  test("When a user finalizes, aborts or names the owner of another user's session, then 404 NOT_FOUND exactly like an unknown id, and nothing changes", async () => {
    const owner = await funded(10);
    const other = await funded(10);
    await post('initialize', owner.auth, { sessionId: 'private-1', modelId: TEST_MODEL, estimatedCredits: 3 });
    const ledger = await count(ctx.db, 'credit_transactions');

    const answers = [
      await post('finalize', other.auth, { sessionId: 'private-1', actualInputTokens: 1, actualOutputTokens: 1 }),
      await post('abort', other.auth, { sessionId: 'private-1' }),
      await post('finalize', other.auth, { sessionId: 'private-1', userId: owner.id, actualInputTokens: 1, actualOutputTokens: 1 }),
      await post('abort', other.auth, { sessionId: 'private-1', userId: owner.id }),
      await post('abort', other.auth, { sessionId: 'never-existed' }),
    ];

    for (const res of answers) {
      expect(res.status).toBe(404);
      expect(res.body.error.code).toBe('NOT_FOUND');
      expect(res.body.error.message).toBe(answers[4].body.error.message);
      expect(res.body.error.details).toEqual({}); // nothing about the session, not even that it exists
    }
    expect(await sessionRow(owner.id, 'private-1')).toMatchObject({ status: 'active', allocated: '3000000' });
    expect(await count(ctx.db, 'credit_transactions')).toBe(ledger);
  });

  test("When an admin settles another user's session, then only naming the owner in userId finds it", async () => {
    const owner = await funded(10);
    const admin = await funded(10, 'admin');
    await post('initialize', owner.auth, { sessionId: 'admin-target', modelId: TEST_MODEL, estimatedCredits: 2 });

    const withoutOwner = await post('abort', admin.auth, { sessionId: 'admin-target', reason: 'stuck' });
    expect(withoutOwner.status).toBe(404);

    const res = await post('abort', admin.auth, { sessionId: 'admin-target', userId: owner.id, reason: 'stuck' });
    expect(res.status).toBe(200);
    expect(await sessionRow(owner.id, 'admin-target')).toMatchObject({ status: 'aborted' });
    expect(await availableOf(ctx.db, owner.id)).toBe(micro(10));
  });

  test('When many users race to open the same id at once, then every one gets their own session, held once', async () => {
    const users = await Promise.all(Array.from({ length: 12 }, () => funded(2)));

    const answers = await Promise.all(users.map((u) => post('initialize', u.auth, { sessionId: 'race-id', modelId: TEST_MODEL, estimatedCredits: 1.5 })));

    expect(answers.map((r) => r.status)).toEqual(users.map(() => 201));
    for (const u of users) expect(await availableOf(ctx.db, u.id)).toBe(micro(0.5));
    expect(await count(ctx.db, 'streaming_sessions', `id = 'race-id'`)).toBe(12);
  });
});
