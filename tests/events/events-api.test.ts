import http from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import request from 'supertest';
import { allEventsVisible, count } from '../support/db';
import { verifyWebhook, WebhookVerificationError } from '../../client';
import { loadConfig } from '../../src/config';
import { createTestContext, type TestContext } from '../support/context';
import { TEST_JWT_SECRET, userWithRole } from '../support/tokens';
import { Receiver } from './receiver';

/** GET /api/events, retention, the client's verifyWebhook and the events configuration (issue 15). */
describe('event log API', () => {
  let ctx: TestContext;
  const admin = userWithRole('admin');
  const alice = userWithRole('user');
  const bob = userWithRole('supervisor');

  beforeAll(async () => {
    ctx = await createTestContext({ WEBHOOK_ALLOW_PRIVATE: 'true' });
    for (let i = 1; i <= 5; i++) {
      await request(ctx.app).post('/api/credits/allocate').set('Authorization', admin.auth).send({ userId: alice.id, credits: i });
    }
    await request(ctx.app).post('/api/credits/allocate').set('Authorization', admin.auth).send({ userId: bob.id, credits: 1 });
  });
  afterAll(async () => {
    await ctx.services.dispatcher.close();
    await ctx.close();
  });

  const get = async (auth: string, query: Record<string, unknown> = {}) => {
    await allEventsVisible(ctx.db);
    return request(ctx.app).get('/api/events').query(query).set('Authorization', auth);
  };

  it('When a user lists events, then only their own, oldest first; another user\u2019s id is 403, even for a supervisor', async () => {
    const own = await get(alice.auth);
    expect(own.status).toBe(200);
    expect(own.body.nextCursor).toBeNull();
    expect(own.body.data.map((e: { data: { credits: number } }) => e.data.credits)).toEqual([1, 2, 3, 4, 5]);
    expect(own.body.data.every((e: { userId: string }) => e.userId === alice.id)).toBe(true);
    expect((await get(alice.auth, { userId: alice.id })).body.data).toHaveLength(5);
    for (const [who, userId] of [[alice, bob.id], [bob, alice.id]] as const) {
      const res = await get(who.auth, { userId });
      expect(res.status).toBe(403);
      expect(res.body.error.code).toBe('FORBIDDEN');
    }
  });

  it('When an admin pages with limit and after, then every event comes exactly once, in order, and type filters', async () => {
    const all = (await get(admin.auth, { limit: 500 })).body.data as Array<{ id: string; userId: string; type: string }>;
    expect(all.length).toBeGreaterThanOrEqual(6);
    const seen: string[] = [];
    let after: string | undefined;
    for (let page = 0; page < 20; page++) {
      const res = await get(admin.auth, { limit: 2, ...(after ? { after } : {}) });
      expect(res.status).toBe(200);
      seen.push(...res.body.data.map((e: { id: string }) => e.id));
      if (!res.body.nextCursor) break;
      expect(res.body.nextCursor).toBe(res.body.data[1].id);
      after = res.body.nextCursor;
    }
    expect(seen).toEqual(all.map((e) => e.id));
    // `cursor` works as a synonym of `after`.
    expect((await get(admin.auth, { cursor: all[0].id })).body.data[0].id).toBe(all[1].id);
    expect((await get(admin.auth, { type: 'credits.low' })).body.data).toEqual([]);
    expect((await get(admin.auth, { type: 'credits.granted', userId: bob.id })).body.data).toHaveLength(1);
  });

  it('When the query is malformed, then 400 VALIDATION_ERROR, never a 5xx', async () => {
    for (const query of [{ after: '42' }, { after: 'evt_abc' }, { after: 'evt_99999999999999999999' }, { type: 'nope' }, { limit: 0 }, { limit: 501 }, { cursor: 'x' }]) {
      const res = await get(admin.auth, query);
      expect({ query, status: res.status, code: res.body.error?.code }).toEqual({ query, status: 400, code: 'VALIDATION_ERROR' });
    }
    // An id that was never issued (or was pruned) continues after that number.
    expect((await get(admin.auth, { after: 'evt_999999999' })).body).toEqual({ data: [], nextCursor: null });
  });

  it('When a transaction that wrote an event is still open, then the log does not show events after it yet, so a cursor never skips it', async () => {
    const t = await ctx.db.sequelize.transaction();
    try {
      await ctx.db.query(`SELECT acct_event_emit('credits.low', $1, '{}'::jsonb)`, [alice.id], t);
      await request(ctx.app).post('/api/credits/allocate').set('Authorization', admin.auth).send({ userId: alice.id, credits: 6 });
      // Read without waiting for the horizon: this test holds it back on purpose.
      const during = (await request(ctx.app).get('/api/events').set('Authorization', alice.auth)).body.data;
      expect(during).toHaveLength(5); // the later, committed grant waits behind the open transaction
    } finally {
      await t.commit();
    }
    const after = (await get(alice.auth)).body.data.map((e: { type: string }) => e.type);
    expect(after.slice(5)).toEqual(['credits.low', 'credits.granted']);
  });

  it('When events and their finished deliveries are older than EVENT_RETENTION_DAYS, then the job prunes them in bounded batches; pending ones stay', async () => {
    const r = await new Receiver().start();
    try {
      const created = await request(ctx.app).post('/api/webhooks').set('Authorization', admin.auth).send({ url: r.url, events: ['credits.expired'] });
      r.secret = created.body.secret;
      await ctx.db.query(`SELECT acct_event_emit('credits.expired', 'old-user', '{}'::jsonb) FROM generate_series(1, 25)`);
      await ctx.services.dispatcher.runUntilIdle();
      expect(r.received).toHaveLength(25);
      await ctx.db.query(`SELECT acct_event_emit('credits.expired', 'old-user', '{}'::jsonb)`);
      await ctx.services.dispatcher.fanOut(100); // one more, whose delivery stays pending
      await ctx.db.query(`UPDATE events SET created_at = now() - interval '31 days' WHERE user_id = 'old-user' RETURNING 1`);
      const recent = await count(ctx.db, 'events', `user_id <> 'old-user'`);

      expect(await ctx.services.events.prune(10, 2)).toBe(20); // two batches of 10, then it stops
      expect(await ctx.services.events.prune(10, 10)).toBe(5);
      expect(await count(ctx.db, 'events', `user_id = 'old-user'`)).toBe(1);
      expect(await count(ctx.db, 'events', `user_id <> 'old-user'`)).toBe(recent);
      expect(await count(ctx.db, 'webhook_attempts')).toBe(0);
    } finally {
      await r.stop();
    }
  });

  it('When a receiver built with Express and verifyWebhook gets a delivery, then it verifies; a tampered body throws', async () => {
    const received: unknown[] = [];
    let secret = '';
    let tampered: unknown = null;
    const receiverApp = express();
    receiverApp.post('/hooks', express.raw({ type: 'application/json' }), (req, res) => {
      received.push(verifyWebhook(secret, req.body as Buffer, req.headers as Record<string, string>));
      try {
        verifyWebhook(secret, Buffer.from(String(req.body).replace('"', ' "')), req.headers as Record<string, string>);
      } catch (error) {
        tampered = error;
      }
      res.sendStatus(204);
    });
    const server = http.createServer(receiverApp);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`;
      const created = await request(ctx.app).post('/api/webhooks').set('Authorization', admin.auth).send({ url, events: ['*'] });
      secret = created.body.secret;
      const test = await request(ctx.app).post(`/api/webhooks/${created.body.id}/test`).set('Authorization', admin.auth);
      expect(test.body.status).toBe('succeeded');
      expect(received).toEqual([expect.objectContaining({ id: test.body.eventId, type: 'webhook.test', data: expect.objectContaining({ webhookId: created.body.id }) })]);
      expect(tampered).toBeInstanceOf(WebhookVerificationError);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe('events configuration', () => {
  const base = { NODE_ENV: 'test', DATABASE_URL: 'postgres://localhost/x', JWT_SECRET: TEST_JWT_SECRET };

  it('When LOW_BALANCE_THRESHOLDS is set, then it is read as sorted, distinct micro-credits; a bad one stops the boot naming it', () => {
    expect(loadConfig({ ...base, LOW_BALANCE_THRESHOLDS: '10, 0.5,10,2' }).lowBalanceThresholds).toEqual([500_000n, 2_000_000n, 10_000_000n]);
    expect(loadConfig(base).lowBalanceThresholds).toEqual([]);
    for (const bad of ['ten', '0', '-1', '1.0000001']) {
      expect(() => loadConfig({ ...base, LOW_BALANCE_THRESHOLDS: bad })).toThrow(/LOW_BALANCE_THRESHOLDS/);
    }
  });

  it('When WEBHOOK_SECRET_KEY is unset, then the key derives from the JWT secret (HS256)', () => {
    const derived = loadConfig(base).webhookSecretKey;
    expect(derived).toHaveLength(32);
    expect(loadConfig({ ...base, WEBHOOK_SECRET_KEY: 'k'.repeat(32) }).webhookSecretKey!.equals(derived!)).toBe(false);
    expect(() => loadConfig({ ...base, WEBHOOK_SECRET_KEY: 'short' })).toThrow(/WEBHOOK_SECRET_KEY/);
    expect(() => loadConfig({ ...base, EVENT_RETENTION_DAYS: '3', EXPIRING_NOTICE_DAYS: '7' })).toThrow(/EVENT_RETENTION_DAYS/);
  });
});
