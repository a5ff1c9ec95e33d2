import crypto from 'node:crypto';
import request from 'supertest';
import { createClient } from 'redis';
import { createApp, type App } from '../../src/app';
import { loadConfig } from '../../src/config';
import { createLogger } from '../../src/lib/logger';
import { createTestContext, type TestContext } from '../support/context';
import { TEST_JWT_SECRET, userWithRole } from '../support/tokens';

let ctx: TestContext;
const apps: App[] = [];
beforeAll(async () => {
  ctx = await createTestContext();
});
afterAll(async () => {
  await Promise.all(apps.map((a) => a.close()));
  await ctx.close();
});

/** An app on the test database with rate limiting on (the test context keeps it off). */
function limitedApp(env: Record<string, string>): App {
  const config = loadConfig({
    NODE_ENV: 'test',
    DATABASE_URL: ctx.databaseUrl,
    JWT_SECRET: TEST_JWT_SECRET,
    USER_CACHE_TTL_MS: '0',
    RATE_LIMIT_ENABLED: 'true',
    ...env,
  });
  const app = createApp({ config, db: ctx.db, logger: createLogger('silent') });
  apps.push(app);
  return app;
}

describe('rate limits (memory store)', () => {
  test('When a user goes over the per-user limit, then 429 RATE_LIMITED in the error format with Retry-After', async () => {
    const { app } = limitedApp({ RATE_LIMIT_PER_USER_PER_MINUTE: '3', RATE_LIMIT_PER_IP_PER_MINUTE: '1000' });
    const alice = userWithRole('user');

    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push((await request(app).get('/api/me').set('Authorization', alice.auth)).status);
    const refused = await request(app).get('/api/me').set('Authorization', alice.auth);

    expect(statuses).toEqual([200, 200, 200]);
    expect(refused.status).toBe(429);
    expect(refused.body).toEqual({
      error: {
        code: 'RATE_LIMITED',
        message: expect.any(String),
        details: expect.objectContaining({ limit: 3, retryAfterSeconds: expect.any(Number) }),
        requestId: refused.headers['x-request-id'],
      },
    });
    const retryAfter = Number(refused.headers['retry-after']);
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(60);
  });

  test('When one user is limited, then another user from the same address is not', async () => {
    const { app } = limitedApp({ RATE_LIMIT_PER_USER_PER_MINUTE: '2', RATE_LIMIT_PER_IP_PER_MINUTE: '1000' });
    const alice = userWithRole('user');
    const bob = userWithRole('user');

    for (let i = 0; i < 3; i++) await request(app).get('/api/me').set('Authorization', alice.auth);
    const aliceAgain = await request(app).get('/api/me').set('Authorization', alice.auth);
    const bobRes = await request(app).get('/api/me').set('Authorization', bob.auth);

    expect(aliceAgain.status).toBe(429);
    expect(bobRes.status).toBe(200);
  });

  test('When an address goes over the per-IP limit, then it is refused before authentication, even without a token', async () => {
    const { app, metrics } = limitedApp({ RATE_LIMIT_PER_USER_PER_MINUTE: '1000', RATE_LIMIT_PER_IP_PER_MINUTE: '2' });

    const first = await request(app).get('/api/me');
    const second = await request(app).get('/api/me');
    const third = await request(app).get('/api/me').set('Authorization', userWithRole('user').auth);

    expect([first.status, second.status]).toEqual([401, 401]);
    expect(third.status).toBe(429);
    expect(third.headers['retry-after']).toBeDefined();
    expect(await metrics.registry.getSingleMetricAsString('http_rate_limited_total')).toContain('http_rate_limited_total{limiter="ip"} 1');
  });

  test('When the limit is reached, then probes outside /api (health, readiness, metrics) still answer', async () => {
    const { app } = limitedApp({ RATE_LIMIT_PER_IP_PER_MINUTE: '1' });
    await request(app).get('/api/me');
    await request(app).get('/api/me').expect(429);

    expect((await request(app).get('/health')).status).toBe(200);
    expect((await request(app).get('/ready')).status).toBe(200);
    expect((await request(app).get('/metrics')).status).toBe(200);
  });

  test('When rate limiting is disabled, then a burst from one user is never refused', async () => {
    const { app } = limitedApp({ RATE_LIMIT_ENABLED: 'false', RATE_LIMIT_PER_USER_PER_MINUTE: '1', RATE_LIMIT_PER_IP_PER_MINUTE: '1' });
    const alice = userWithRole('user');

    const statuses = [];
    for (let i = 0; i < 5; i++) statuses.push((await request(app).get('/api/me').set('Authorization', alice.auth)).status);

    expect(statuses).toEqual([200, 200, 200, 200, 200]);
  });

  test('When REDIS_URL points at nothing, then requests still pass (the limiter fails open) instead of hanging', async () => {
    const { app } = limitedApp({ REDIS_URL: 'redis://127.0.0.1:1', RATE_LIMIT_PER_USER_PER_MINUTE: '1', RATE_LIMIT_PER_IP_PER_MINUTE: '1' });
    const alice = userWithRole('user');

    const first = await request(app).get('/api/me').set('Authorization', alice.auth);
    const second = await request(app).get('/api/me').set('Authorization', alice.auth);

    expect([first.status, second.status]).toEqual([200, 200]);
  });
});

const REDIS_URL = process.env.TEST_REDIS_URL;
if (!REDIS_URL) {
  // Not a skipped test: the shared-store tests are simply not registered without a Redis to run against.
  console.log('tests/ops/rate-limit: no Redis (TEST_REDIS_URL unset, nothing on 127.0.0.1:6379): shared-limit tests not run');
} else {
  describe('rate limits shared through Redis', () => {
    test('When two instances share the Redis store, then a user has one limit across both', async () => {
      const env = { REDIS_URL, RATE_LIMIT_PER_USER_PER_MINUTE: '4', RATE_LIMIT_PER_IP_PER_MINUTE: '100000' };
      const first = limitedApp(env).app;
      const second = limitedApp(env).app;
      const alice = userWithRole('user', `redis-${crypto.randomUUID()}`);

      const statuses = [];
      for (const app of [first, second, first, second]) statuses.push((await request(app).get('/api/me').set('Authorization', alice.auth)).status);
      const overFirst = await request(first).get('/api/me').set('Authorization', alice.auth);
      const overSecond = await request(second).get('/api/me').set('Authorization', alice.auth);

      expect(statuses).toEqual([200, 200, 200, 200]);
      expect(overFirst.status).toBe(429);
      expect(overSecond.status).toBe(429);
      expect(Number(overSecond.headers['retry-after'])).toBeGreaterThan(0);

      // The count lives in Redis, under the user's key.
      const redis = createClient({ url: REDIS_URL });
      await redis.connect();
      try {
        expect(Number(await redis.get(`acct:rl:user:u:${alice.id}`))).toBe(6);
      } finally {
        await redis.close();
      }
    });

    test('When the limit is only reached in Redis by another instance, then this instance refuses too', async () => {
      const env = { REDIS_URL, RATE_LIMIT_PER_USER_PER_MINUTE: '2', RATE_LIMIT_PER_IP_PER_MINUTE: '100000' };
      const busy = limitedApp(env).app;
      const idle = limitedApp(env).app;
      const bob = userWithRole('user', `redis-${crypto.randomUUID()}`);

      await request(busy).get('/api/me').set('Authorization', bob.auth).expect(200);
      await request(busy).get('/api/me').set('Authorization', bob.auth).expect(200);
      const res = await request(idle).get('/api/me').set('Authorization', bob.auth);

      expect(res.status).toBe(429);
      expect(res.body.error.code).toBe('RATE_LIMITED');
    });
  });
}
