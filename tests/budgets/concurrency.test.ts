import type { Server } from 'node:http';
import request from 'supertest';
import { createTestContext, type TestContext } from '../support/context';
import { count, grantDirect, micro } from '../support/db';
import { bearer, tokenFor, userWithRole } from '../support/tokens';
import { addTestModel, ledgerProblems, reconcile, TEST_MODEL } from '../sessions/support';
import { budgetProblems, counterOf } from './support';

let ctx: TestContext;
let server: Server;
beforeAll(async () => {
  ctx = await createTestContext({ DB_ACQUIRE_TIMEOUT_MS: '120000', USER_CACHE_TTL_MS: '60000', PRICE_CACHE_TTL_MS: '60000' });
  await addTestModel(ctx.db);
  server = ctx.app.listen(0, '127.0.0.1', 2048);
});
afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  await ctx.close();
});

test('When 1000 initializes from 20 users of one org race against an org budget worth 100 holds, then exactly 100 are held, 900 get BUDGET_EXCEEDED, no deadlock, and the books add up', async () => {
  const org = `hot-org-${Date.now()}`;
  const users = await Promise.all(
    Array.from({ length: 20 }, async (_, i) => {
      const id = `hot-${i}-${Date.now()}`;
      await grantDirect(ctx.db, id, 1000); // credits are never the limit here
      return { id, auth: bearer(tokenFor({ sub: id, extra: { org } })) };
    }),
  );
  const supervisor = userWithRole('supervisor');
  const budget = await request(server)
    .post('/api/budgets')
    .set('Authorization', supervisor.auth)
    .send({ scope: { orgId: org }, period: 'day', limitCredits: 100 });
  expect(budget.status).toBe(201);
  const [{ deadlocks: deadlocksBefore }] = await ctx.db.query<{ deadlocks: string }>(
    `SELECT deadlocks::text FROM pg_stat_database WHERE datname = current_database()`,
  );

  const responses = await Promise.all(
    Array.from({ length: 1000 }, (_, i) =>
      request(server)
        .post('/api/streaming-sessions/initialize')
        .set('Authorization', users[i % 20].auth)
        .send({ modelId: TEST_MODEL, estimatedCredits: 1 }),
    ),
  );

  const byStatus: Record<number, number> = {};
  for (const r of responses) byStatus[r.status] = (byStatus[r.status] ?? 0) + 1;
  expect(byStatus).toEqual({ 201: 100, 402: 900 });
  expect(responses.filter((r) => r.status === 402).every((r) => r.body.error.code === 'BUDGET_EXCEEDED')).toBe(true);
  expect(await count(ctx.db, 'streaming_sessions', `status = 'active' AND user_id = ANY($1)`, [users.map((u) => u.id)])).toBe(100);
  expect(await counterOf(ctx.db, budget.body.id)).toEqual({ spent: 0n, held: micro(100) });
  const [{ deadlocks }] = await ctx.db.query<{ deadlocks: string }>(`SELECT deadlocks::text FROM pg_stat_database WHERE datname = current_database()`);
  expect(deadlocks).toBe(deadlocksBefore);

  // Settle them all at once: half finalized at 0.5 credits (500 input tokens), half aborted.
  const held = responses.filter((r) => r.status === 201);
  const settled = await Promise.all(
    held.map((r, i) =>
      request(server)
        .post(`/api/streaming-sessions/${i % 2 === 0 ? 'finalize' : 'abort'}`)
        .set('Authorization', users[responses.indexOf(r) % 20].auth)
        .send(i % 2 === 0 ? { sessionId: r.body.sessionId, actualInputTokens: 500, actualOutputTokens: 0 } : { sessionId: r.body.sessionId }),
    ),
  );
  expect(settled.every((r) => r.status === 200)).toBe(true);
  expect(await counterOf(ctx.db, budget.body.id)).toEqual({ spent: micro(25), held: 0n });
  expect(await reconcile(server)).toMatchObject({ ok: true, discrepancies: [] });
  expect(await ledgerProblems(ctx.db)).toEqual([]);
  expect(await budgetProblems(ctx.db)).toEqual([]);
});
