import { Client } from 'pg';
import request from 'supertest';
import { startBackgroundJobs } from '../../src/services/background-jobs';
import { createLogger } from '../../src/lib/logger';
import { createTestContext, type TestContext } from '../support/context';
import { availableOf, count, grantDirect, micro } from '../support/db';
import { userWithRole } from '../support/tokens';
import { makeOverdue } from '../sessions/support';

/**
 * Issue 12, item 6: sweepers isolated. A session or lot whose expiry fails is retried with backoff, counted
 * and never blocks the others; session expiry, lot expiry and key cleanup run independently. Failures are
 * injected in PostgreSQL itself (a trigger that refuses one session's usage record, one lot's ledger row).
 */
let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext({ SESSION_EXPIRY_POLICY: 'release' });
});
afterAll(() => ctx.close());

/** DDL for fault injection (dollar-quoted bodies), on a plain connection. */
async function ddl(sql: string) {
  const client = new Client({ connectionString: ctx.databaseUrl });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

const post = (path: string, auth: string, body: object) =>
  request(ctx.app).post(`/api/streaming-sessions/${path}`).set('Authorization', auth).send(body);

async function poisonSession(sessionId: string) {
  await ddl(`
    CREATE OR REPLACE FUNCTION test_poison_session() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF NEW.session_id = '${sessionId}' THEN RAISE EXCEPTION 'poisoned session'; END IF;
      RETURN NEW;
    END $$`);
  await ddl(`DROP TRIGGER IF EXISTS test_poison_session ON usage_records`);
  await ddl(`CREATE TRIGGER test_poison_session BEFORE INSERT ON usage_records FOR EACH ROW EXECUTE FUNCTION test_poison_session()`);
}

async function failures(job: string): Promise<number> {
  const text = await ctx.metrics.registry.metrics();
  const match = new RegExp(`accounting_sweeper_item_failures_total\\{job="${job}"\\} (\\d+)`).exec(text);
  return match ? Number(match[1]) : 0;
}

test('When the oldest overdue session cannot be expired, then the others still are, and it waits in backoff, counted', async () => {
  const user = userWithRole('user');
  await grantDirect(ctx.db, user.id, 10);
  for (const id of ['poison', 'ok-1', 'ok-2', 'ok-3']) {
    expect((await post('initialize', user.auth, { sessionId: id, modelId: 'gpt-4o', estimatedCredits: 1 })).status).toBe(201);
  }
  await makeOverdue(ctx.db, `user_id = $1`, [user.id]);
  // The poisoned one is the oldest: the old sweeper picked it first on every call and stopped there.
  await ctx.db.query(`UPDATE streaming_sessions SET expires_at = now() - interval '1 hour' WHERE user_id = $1 AND id = 'poison' RETURNING 1`, [user.id]);
  await poisonSession('poison');
  const before = await failures('session_expiry');

  const expired = await ctx.services.sessions.expireOverdue(100);

  expect(expired).toBe(3);
  expect(await count(ctx.db, 'streaming_sessions', `user_id = $1 AND status = 'expired'`, [user.id])).toBe(3);
  expect(await count(ctx.db, 'streaming_sessions', `user_id = $1 AND id = 'poison' AND status = 'active'`, [user.id])).toBe(1);
  expect(await failures('session_expiry')).toBe(before + 1);
  const [backoff] = await ctx.db.query<{ attempts: number; waiting: boolean }>(
    `SELECT attempts, retry_at > now() AS waiting FROM sweeper_backoff WHERE job = 'session_expiry'`,
  );
  expect(backoff).toEqual({ attempts: 1, waiting: true });
  // In backoff it is not retried at once: a second sweep does nothing and counts no new failure.
  expect(await ctx.services.sessions.expireOverdue(100)).toBe(0);
  expect(await failures('session_expiry')).toBe(before + 1);

  // Once due again and healthy, it is expired and its backoff forgotten.
  await ddl(`DROP TRIGGER test_poison_session ON usage_records`);
  await ctx.db.query(`UPDATE sweeper_backoff SET retry_at = now() - interval '1 second' RETURNING 1`);
  expect(await ctx.services.sessions.expireOverdue(100)).toBe(1);
  expect(await count(ctx.db, 'sweeper_backoff')).toBe(0);
  expect(await availableOf(ctx.db, user.id)).toBe(micro(10));
});

test('When a lot cannot be expired, then later lots still are, and it is retried with backoff', async () => {
  const user = userWithRole('user');
  const past = new Date(Date.now() - 60_000);
  const bad = await grantDirect(ctx.db, user.id, 1, new Date(Date.now() - 120_000));
  const good = await grantDirect(ctx.db, user.id, 2, past);
  await ddl(`
    CREATE OR REPLACE FUNCTION test_poison_lot() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF NEW.allocation_id = ${bad} AND NEW.type = 'expire' THEN RAISE EXCEPTION 'poisoned lot'; END IF;
      RETURN NEW;
    END $$`);
  await ddl(`CREATE TRIGGER test_poison_lot BEFORE INSERT ON credit_transactions FOR EACH ROW EXECUTE FUNCTION test_poison_lot()`);
  try {
    const before = await failures('lot_expiry');
    await ctx.services.credits.expireLots();
    expect(await count(ctx.db, 'credit_transactions', `allocation_id = $1 AND type = 'expire'`, [good])).toBe(1);
    expect(await count(ctx.db, 'credit_transactions', `allocation_id = $1 AND type = 'expire'`, [bad])).toBe(0);
    expect(await failures('lot_expiry')).toBe(before + 1);
    expect(await count(ctx.db, 'sweeper_backoff', `job = 'lot_expiry' AND item = $1`, [bad])).toBe(1);
  } finally {
    await ddl(`DROP TRIGGER test_poison_lot ON credit_transactions`);
  }
});

test('When every session expiry fails, then the background jobs still expire lots and delete old idempotency keys', async () => {
  const user = userWithRole('user');
  await grantDirect(ctx.db, user.id, 5);
  expect((await post('initialize', user.auth, { sessionId: 'all-fail', modelId: 'gpt-4o', estimatedCredits: 1 })).status).toBe(201);
  await makeOverdue(ctx.db, `user_id = $1`, [user.id]);
  await ddl(`CREATE OR REPLACE FUNCTION test_refuse_all() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused'; END $$`);
  await ddl(`CREATE TRIGGER test_refuse_all BEFORE UPDATE ON streaming_sessions FOR EACH ROW EXECUTE FUNCTION test_refuse_all()`);
  const lot = await grantDirect(ctx.db, user.id, 3, new Date(Date.now() - 1000));
  await ctx.db.query(
    `INSERT INTO idempotency_keys (caller_id, key, request_hash, response_status, response_body, expires_at)
     VALUES ($1, 'old-key', 'h', 200, '{}', now() - interval '1 second') RETURNING 1`,
    [user.id],
  );
  const jobs = startBackgroundJobs(ctx.services, 50, createLogger('silent'));
  try {
    for (let i = 0; i < 200; i++) {
      const lotDone = (await count(ctx.db, 'credit_transactions', `allocation_id = $1 AND type = 'expire'`, [lot])) === 1;
      const keyDone = (await count(ctx.db, 'idempotency_keys', `key = 'old-key'`)) === 0;
      if (lotDone && keyDone) break;
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    await jobs.stop();
    await ddl(`DROP TRIGGER test_refuse_all ON streaming_sessions`);
  }
  expect(await count(ctx.db, 'credit_transactions', `allocation_id = $1 AND type = 'expire'`, [lot])).toBe(1);
  expect(await count(ctx.db, 'idempotency_keys', `key = 'old-key'`)).toBe(0);
  expect(await count(ctx.db, 'streaming_sessions', `user_id = $1 AND id = 'all-fail' AND status = 'active'`, [user.id])).toBe(1);
  expect(await failures('session_expiry')).toBeGreaterThan(0);
});
