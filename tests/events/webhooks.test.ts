import request from 'supertest';
import { allEventsVisible } from '../support/db';
import { databaseOptionsFrom } from '../../src/config/sequelize';
import { createDatabase, type Database } from '../../src/db/database';
import { Metrics } from '../../src/lib/metrics';
import { dispatcherOptions } from '../../src/services';
import { EVENT_COLUMNS, toEventJson, type EventRow } from '../../src/services/event.service';
import { WebhookDispatcher } from '../../src/services/webhook-dispatcher';
import { createTestContext, type TestContext } from '../support/context';
import { userWithRole } from '../support/tokens';
import { Receiver } from './receiver';

/**
 * Webhooks (issue 15) against real HTTP receivers on loopback: every request's Standard Webhooks signature
 * is verified with the `standardwebhooks` package. The dispatcher is driven round by round (the background
 * loop is off), and "time passing" for retries is moving next_attempt_at, never sleeping.
 */
describe('webhooks', () => {
  let ctx: TestContext;
  const admin = userWithRole('admin');
  const receivers: Receiver[] = [];
  const extraDbs: Database[] = [];

  beforeAll(async () => {
    ctx = await createTestContext({ WEBHOOK_ALLOW_PRIVATE: 'true', WEBHOOK_DISABLE_AFTER_FAILURES: '0', WEBHOOK_ENDPOINT_CONCURRENCY: '8' });
  });
  afterAll(async () => {
    await Promise.all(receivers.map((r) => r.stop()));
    await ctx.services.dispatcher.close();
    await Promise.all(extraDbs.map((db) => db.close()));
    await ctx.close();
  });

  const receiver = async () => {
    const r = await new Receiver().start();
    receivers.push(r);
    return r;
  };
  const createEndpoint = async (r: Receiver, events: string[] = ['*']) => {
    const res = await request(ctx.app).post('/api/webhooks').set('Authorization', admin.auth).send({ url: r.url, events });
    expect(res.status).toBe(201);
    r.secret = res.body.secret;
    return res.body as { id: string; secret: string };
  };
  /** `n` committed events for a fresh user, written straight through the outbox function. */
  const emit = async (n: number, type = 'credits.granted') => {
    const userId = `u-${Math.random().toString(36).slice(2)}`;
    await ctx.db.query(`SELECT acct_event_emit($1, $2, jsonb_build_object('n', g)) FROM generate_series(1, $3) g`, [type, userId, n]);
    const rows = await ctx.db.query<{ id: string }>(`SELECT id FROM events WHERE user_id = $1 ORDER BY id`, [userId]);
    return rows.map((r) => `evt_${r.id}`);
  };
  it('When endpoints are listed page by page, then issued cursors chain; a cursor naming no endpoint id the service makes is a 400', async () => {
    const r = await receiver();
    const made = [await createEndpoint(r, ['credits.low']), await createEndpoint(r, ['credits.low'])];
    const first = await request(ctx.app).get('/api/webhooks?limit=1').set('Authorization', admin.auth);
    expect(first.status).toBe(200);
    expect(first.body.nextCursor).toEqual(expect.any(String));
    const second = await request(ctx.app).get(`/api/webhooks?limit=1&cursor=${first.body.nextCursor}`).set('Authorization', admin.auth);
    expect(second.status).toBe(200);
    expect(second.body.data[0].id > first.body.data[0].id).toBe(true);
    const b64 = (keys: unknown[]) => Buffer.from(JSON.stringify(keys)).toString('base64url');
    for (const keys of [['abc'], ['-1'], ['99999999999999999999999'], ['\u0000'], ['\ud800'], [`wh_${'g'.repeat(24)}`], [1]]) {
      const res = await request(ctx.app).get(`/api/webhooks?cursor=${b64(keys)}`).set('Authorization', admin.auth);
      expect([keys, res.status, res.body.error?.code]).toEqual([keys, 400, 'VALIDATION_ERROR']);
    }
    // Later tests count every endpoint's deliveries.
    for (const { id } of made) expect((await request(ctx.app).delete(`/api/webhooks/${id}`).set('Authorization', admin.auth)).status).toBe(204);
  });

  /** Every delivery due now (as if the backoff had elapsed). */
  const timePasses = () => ctx.db.query(`UPDATE webhook_deliveries SET next_attempt_at = now() WHERE status = 'pending' RETURNING 1`);

  it('When an admin creates an endpoint, then 201 {id, url, events, secret} with a whsec_ secret shown once and stored encrypted', async () => {
    const r = await receiver();
    const res = await request(ctx.app).post('/api/webhooks').set('Authorization', admin.auth).send({ url: r.url, events: ['credits.low'], description: 'billing' });
    expect(res.status).toBe(201);
    expect(res.body).toEqual(
      expect.objectContaining({ id: expect.any(String), url: r.url, events: ['credits.low'], secret: expect.stringMatching(/^whsec_[A-Za-z0-9+/=]{32}$/), description: 'billing', enabled: true }),
    );
    const got = await request(ctx.app).get(`/api/webhooks/${res.body.id}`).set('Authorization', admin.auth);
    expect(got.status).toBe(200);
    expect(got.body.secret).toBeUndefined();
    const list = await request(ctx.app).get('/api/webhooks').set('Authorization', admin.auth);
    expect(list.body.data.map((w: { id: string }) => w.id)).toContain(res.body.id);
    expect(JSON.stringify(list.body)).not.toContain(res.body.secret);
    const [row] = await ctx.db.query<{ secret_encrypted: string }>(`SELECT secret_encrypted FROM webhook_endpoints WHERE id = $1`, [res.body.id]);
    expect(row.secret_encrypted).not.toContain(res.body.secret.slice('whsec_'.length));

    const patched = await request(ctx.app).patch(`/api/webhooks/${res.body.id}`).set('Authorization', admin.auth).send({ events: ['*'], enabled: false });
    expect(patched.status).toBe(200);
    expect(patched.body).toEqual(expect.objectContaining({ events: ['*'], enabled: false }));
    expect((await request(ctx.app).delete(`/api/webhooks/${res.body.id}`).set('Authorization', admin.auth)).status).toBe(204);
    expect((await request(ctx.app).get(`/api/webhooks/${res.body.id}`).set('Authorization', admin.auth)).status).toBe(404);
  });

  it('When a non-admin or a bad body calls the webhook API, then 403 / 400 and nothing is created', async () => {
    const supervisor = userWithRole('supervisor');
    const before = await ctx.db.query(`SELECT id FROM webhook_endpoints`);
    const forbidden = await request(ctx.app).post('/api/webhooks').set('Authorization', supervisor.auth).send({ url: 'https://example.com/h', events: ['*'] });
    expect(forbidden.status).toBe(403);
    for (const body of [
      { url: 'ftp://example.com/h', events: ['*'] },
      { url: 'not a url', events: ['*'] },
      { url: 'https://example.com/h', events: [] },
      { url: 'https://example.com/h', events: ['credits.nope'] },
      { url: 'https://example.com/h', events: ['*', 'credits.low'] },
      { url: 'https://user:pw@example.com/h', events: ['*'] },
      { url: 'https://example.com/h', events: ['*'], secret: 'mine' },
    ]) {
      const res = await request(ctx.app).post('/api/webhooks').set('Authorization', admin.auth).send(body);
      expect({ body, status: res.status, code: res.body.error?.code }).toEqual({ body, status: 400, code: 'VALIDATION_ERROR' });
    }
    expect(await ctx.db.query(`SELECT id FROM webhook_endpoints`)).toEqual(before);
    expect((await request(ctx.app).post('/api/webhooks/nope/deliveries/abc/retry').set('Authorization', admin.auth)).status).toBe(404);
  });

  it('When events are delivered, then each is one signed POST whose body is the event and whose webhook-id is the event id', async () => {
    const r = await receiver();
    await createEndpoint(r, ['credits.granted']);
    const user = userWithRole('user');
    const grant = await request(ctx.app).post('/api/credits/allocate').set('Authorization', admin.auth).send({ userId: user.id, credits: 3 });
    expect(grant.status).toBe(201);
    await ctx.services.dispatcher.runUntilIdle();

    await allEventsVisible(ctx.db);
    const [event] = (await request(ctx.app).get('/api/events').query({ userId: user.id }).set('Authorization', admin.auth)).body.data;
    const mine = r.received.filter((x) => x.body.userId === user.id);
    expect(r.invalid).toBe(0);
    expect(mine).toEqual([{ id: event.id, timestamp: expect.stringMatching(/^\d{10}$/), body: event, raw: expect.any(String) }]);
  });

  it('When the receiver is down for a while, then attempts back off exponentially and it gets each event once it is up, under one webhook-id', async () => {
    const r = await receiver();
    const endpoint = await createEndpoint(r, ['credits.low']);
    const port = r.port;
    await r.stop(); // connection refused from now on
    const ids = await emit(3, 'credits.low');

    await ctx.services.dispatcher.runUntilIdle();
    // Failed once each, and not due again before the backoff: another round sends nothing.
    expect(await ctx.services.dispatcher.tick({ wait: true })).toBe(0);
    await timePasses();
    await ctx.services.dispatcher.runUntilIdle();
    await timePasses();
    await ctx.services.dispatcher.runUntilIdle();

    const rows = await ctx.db.query<{ attempts: number; status: string; gap_ms: number }>(
      `SELECT attempts, status, extract(epoch FROM next_attempt_at - (SELECT max(attempted_at) FROM webhook_attempts a WHERE a.delivery_id = d.id)) * 1000 AS gap_ms
         FROM webhook_deliveries d WHERE endpoint_id = $1`,
      [endpoint.id],
    );
    expect(rows).toHaveLength(3);
    for (const row of rows) {
      expect(row).toEqual(expect.objectContaining({ attempts: 3, status: 'pending' }));
      // After the 3rd failure the delay is 5000 x 2^2 with jitter: between 10 and 20 seconds.
      expect(Number(row.gap_ms)).toBeGreaterThanOrEqual(10_000 - 50);
      expect(Number(row.gap_ms)).toBeLessThanOrEqual(20_000 + 50);
    }
    const deliveries = await request(ctx.app).get(`/api/webhooks/${endpoint.id}/deliveries`).set('Authorization', admin.auth);
    expect(deliveries.status).toBe(200);
    expect(deliveries.body.data[0]).toEqual(
      expect.objectContaining({ status: 'pending', attemptCount: 3, lastStatusCode: null, lastError: expect.stringContaining('ECONNREFUSED') }),
    );
    expect(deliveries.body.data[0].attempts).toHaveLength(3);
    expect(deliveries.body.data[0].attempts[0]).toEqual({ attemptedAt: expect.any(String), statusCode: null, durationMs: expect.any(Number), error: expect.any(String), success: false });

    await r.start(port); // back up
    await timePasses();
    await ctx.services.dispatcher.runUntilIdle();
    expect(r.invalid).toBe(0);
    expect(r.received.map((x) => x.id).sort()).toEqual([...ids].sort());
    const done = await request(ctx.app).get(`/api/webhooks/${endpoint.id}/deliveries`).query({ status: 'succeeded' }).set('Authorization', admin.auth);
    expect(done.body.data).toHaveLength(3);
    expect(done.body.data[0].attempts[0]).toEqual(expect.objectContaining({ statusCode: 204, success: true, error: null }));
  });

  it('When an endpoint answers a redirect, then it is a failure and the redirect is not followed; a manual retry sends it again', async () => {
    const r = await receiver();
    r.mode = 'redirect';
    const endpoint = await createEndpoint(r, ['credits.depleted']);
    await emit(1, 'credits.depleted');
    await ctx.services.dispatcher.runUntilIdle();
    const list = await request(ctx.app).get(`/api/webhooks/${endpoint.id}/deliveries`).set('Authorization', admin.auth);
    expect(list.body.data[0]).toEqual(expect.objectContaining({ status: 'pending', lastStatusCode: 302, lastError: 'redirect (302) not followed' }));
    expect(r.received).toHaveLength(0);

    r.mode = 'ok';
    const retry = await request(ctx.app).post(`/api/webhooks/${endpoint.id}/deliveries/${list.body.data[0].id}/retry`).set('Authorization', admin.auth);
    expect(retry.status).toBe(202);
    await ctx.services.dispatcher.runUntilIdle();
    expect(r.received).toHaveLength(1);
  });

  it('When POST /api/webhooks/:id/test is called, then a webhook.test event is sent to that endpoint only, signed, and the attempt is returned', async () => {
    const r = await receiver();
    const other = await receiver();
    const endpoint = await createEndpoint(r, ['*']);
    const second = await createEndpoint(other, ['*']);
    const res = await request(ctx.app).post(`/api/webhooks/${endpoint.id}/test`).set('Authorization', admin.auth);
    expect(res.status).toBe(200);
    expect(res.body).toEqual(expect.objectContaining({ webhookId: endpoint.id, eventType: 'webhook.test', status: 'succeeded', attemptCount: 1 }));
    expect(r.received.map((x) => x.body.type)).toEqual(['webhook.test']);
    await ctx.services.dispatcher.runUntilIdle();
    expect(other.received.filter((x) => x.body.type === 'webhook.test')).toHaveLength(0);
    for (const id of [endpoint.id, second.id]) await request(ctx.app).delete(`/api/webhooks/${id}`).set('Authorization', admin.auth);
  });

  it('When a receiver is slow, then deliveries to other endpoints go on', async () => {
    const slow = await receiver();
    const fast = await receiver();
    slow.mode = 'hang';
    await createEndpoint(slow, ['budget.threshold']);
    await createEndpoint(fast, ['budget.threshold']);
    const ids = await emit(30, 'budget.threshold');

    for (let round = 0; round < 500 && fast.received.length < ids.length; round++) {
      await ctx.services.dispatcher.tick();
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(fast.received.map((x) => x.id).sort()).toEqual([...ids].sort());
    // The slow one has only its concurrency limit's worth in flight, none answered.
    expect(slow.heldCount).toBe(8);

    slow.mode = 'ok';
    slow.release();
    await ctx.services.dispatcher.drain();
    await ctx.services.dispatcher.runUntilIdle();
    expect(slow.stats()).toEqual({ distinct: ids.length, duplicates: 0 });
  });

  it('When three dispatchers on separate pools race over 2,000 events, then every event is delivered, and duplicates are counted (none)', async () => {
    const r = await receiver();
    await createEndpoint(r, ['session.expired']);
    const ids = await emit(2000, 'session.expired');
    const dispatchers: WebhookDispatcher[] = [];
    for (let i = 0; i < 3; i++) {
      const db = createDatabase(databaseOptionsFrom(ctx.config, ctx.databaseUrl, { poolMax: 5, statementTimeoutMs: 10_000, lockTimeoutMs: 3_000, acquireTimeoutMs: 5_000 }));
      extraDbs.push(db);
      dispatchers.push(new WebhookDispatcher(db, { ...dispatcherOptions(ctx.config), concurrencyPerEndpoint: 32 }, new Metrics()));
    }
    await Promise.all(dispatchers.map((d) => d.runUntilIdle(5000)));
    await Promise.all(dispatchers.map((d) => d.close()));

    const stats = r.stats();
    console.log(`3 dispatchers, ${ids.length} events: ${stats.distinct} delivered, ${stats.duplicates} duplicates`);
    expect(r.invalid).toBe(0);
    expect(new Set(r.received.map((x) => x.id))).toEqual(new Set(ids));
    expect(stats.duplicates).toBe(0);
    const [row] = await ctx.db.query<{ n: string }>(
      `SELECT count(*) AS n FROM webhook_deliveries d JOIN events e ON e.id = d.event_id WHERE e.type = 'session.expired' AND d.status = 'succeeded' AND d.attempts = 1`,
    );
    expect(Number(row.n)).toBe(ids.length);
  }, 300_000);

  it('When the instance delivering dies mid-send, then its lease runs out, another instance delivers, and a late duplicate carries the same webhook-id and records nothing', async () => {
    const r = await receiver();
    const endpoint = await createEndpoint(r, ['usage.refunded']);
    const ids = await emit(5, 'usage.refunded');
    const db = createDatabase(databaseOptionsFrom(ctx.config, ctx.databaseUrl, { poolMax: 2, statementTimeoutMs: 10_000, lockTimeoutMs: 3_000, acquireTimeoutMs: 5_000 }));
    extraDbs.push(db);
    const doomed = new WebhookDispatcher(db, dispatcherOptions(ctx.config), new Metrics());
    await doomed.fanOut(100);
    const leased = await doomed.claim(100); // claimed, then the process "dies" before sending
    expect(leased).toHaveLength(5);
    await db.close();

    // While the lease holds, nobody else sends them.
    expect(await ctx.services.dispatcher.tick({ wait: true })).toBe(0);
    // The lease runs out (as WEBHOOK_TIMEOUT_MS + 30 s would).
    await ctx.db.query(`UPDATE webhook_deliveries SET next_attempt_at = now() WHERE endpoint_id = $1 AND status = 'delivering' RETURNING 1`, [endpoint.id]);
    await ctx.services.dispatcher.runUntilIdle();
    expect(r.stats()).toEqual({ distinct: 5, duplicates: 0 });

    // A send that was already on the wire when the instance froze arrives late: same id, so the receiver can drop it.
    const late = leased[0];
    const [event] = await ctx.db.query<EventRow>(`SELECT ${EVENT_COLUMNS} FROM events WHERE id = $1`, [late.event_id]);
    const result = await ctx.services.dispatcher.send(late, `evt_${event.id}`, JSON.stringify(toEventJson(event)));
    expect(result.success).toBe(true);
    expect(r.stats()).toEqual({ distinct: 5, duplicates: 1 });
    expect(new Set(r.received.map((x) => x.id))).toEqual(new Set(ids));
    const [row] = await ctx.db.query<{ attempts: number; status: string }>(`SELECT attempts, status FROM webhook_deliveries WHERE id = $1`, [late.id]);
    expect(row).toEqual({ attempts: 2, status: 'succeeded' });
  });

  it('When delivery succeeds, then the metrics count it by outcome and observe the lag from event to first success', async () => {
    const res = await request(ctx.app).get('/metrics');
    expect(res.text).toMatch(/webhook_deliveries_total\{outcome="success"\} [1-9]/);
    expect(res.text).toMatch(/webhook_deliveries_total\{outcome="network_error"\} [1-9]/);
    expect(res.text).toMatch(/webhook_delivery_lag_seconds_count [1-9]/);
  });
});

describe('webhooks: auto-disable and private targets', () => {
  let ctx: TestContext;
  const admin = userWithRole('admin');
  let r: Receiver;

  beforeAll(async () => {
    ctx = await createTestContext({ WEBHOOK_DISABLE_AFTER_FAILURES: '3' });
    r = await new Receiver().start();
  });
  afterAll(async () => {
    await r.stop();
    await ctx.services.dispatcher.close();
    await ctx.close();
  });

  it('When a URL points to a private or loopback address, then 400 and nothing is created', async () => {
    for (const url of ['http://127.0.0.1:8080/h', 'http://localhost/h', 'http://localhost./h', 'http://10.1.2.3/h', 'http://[::1]/h', 'http://169.254.169.254/latest', 'http://0.0.0.0/h', 'http://[::ffff:127.0.0.1]/h']) {
      const res = await request(ctx.app).post('/api/webhooks').set('Authorization', admin.auth).send({ url, events: ['*'] });
      expect({ url, status: res.status, code: res.body.error?.code }).toEqual({ url, status: 400, code: 'VALIDATION_ERROR' });
    }
    expect(await ctx.db.query(`SELECT id FROM webhook_endpoints`)).toEqual([]);
    const ok = await request(ctx.app).post('/api/webhooks').set('Authorization', admin.auth).send({ url: 'https://hooks.example.com/h', events: ['*'] });
    expect(ok.status).toBe(201);
    await request(ctx.app).delete(`/api/webhooks/${ok.body.id}`).set('Authorization', admin.auth);
  });

  it('When an accepted host name later resolves to loopback, then the dispatcher refuses to connect; after repeated failures the endpoint is disabled with an event saying so', async () => {
    const created = await request(ctx.app).post('/api/webhooks').set('Authorization', admin.auth).send({ url: 'https://hooks.example.com/h', events: ['credits.low'] });
    // As if DNS now pointed the name at this machine.
    await ctx.db.query(`UPDATE webhook_endpoints SET url = $2 WHERE id = $1 RETURNING 1`, [created.body.id, `http://localhost:${r.port}/hooks`]);
    await ctx.db.query(`SELECT acct_event_emit('credits.low', 'u1', '{}'::jsonb) FROM generate_series(1, 3)`);
    await ctx.services.dispatcher.runUntilIdle();
    expect(r.received.length + r.invalid).toBe(0);

    const endpoint = await request(ctx.app).get(`/api/webhooks/${created.body.id}`).set('Authorization', admin.auth);
    expect(endpoint.body).toEqual(expect.objectContaining({ enabled: false, consecutiveFailures: 3, disabledReason: expect.stringContaining('private or loopback') }));
    await allEventsVisible(ctx.db);
    const events = await request(ctx.app).get('/api/events').query({ type: 'webhook.disabled' }).set('Authorization', admin.auth);
    expect(events.body.data).toEqual([
      expect.objectContaining({ type: 'webhook.disabled', userId: null, data: expect.objectContaining({ webhookId: created.body.id, consecutiveFailures: 3 }) }),
    ]);
  });
});
