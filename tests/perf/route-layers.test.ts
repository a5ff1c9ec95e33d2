import express, { type ErrorRequestHandler, type RequestHandler } from 'express';
import request from 'supertest';
import { inSeries } from '../../src/lib/in-series';
import { addTestModel, TEST_MODEL } from '../sessions/support';
import { createTestContext, type TestContext } from '../support/context';
import { count, grantDirect } from '../support/db';
import { userWithRole } from '../support/tokens';

// Each route's label, auth, role check, validation, idempotency key and handler run as one router layer
// (src/lib/in-series.ts), and the hot path takes pooled connections without Sequelize's getConnection
// wrapper (docs/performance.md). Both must behave exactly as before.

describe('inSeries behaves as the same handlers mounted one after the other', () => {
  const seen: string[] = [];
  const step = (name: string): RequestHandler => (_req, _res, next) => {
    seen.push(name);
    next();
  };
  const onError: ErrorRequestHandler = (error, _req, res, _next) => {
    res.status(500).json({ caught: error instanceof Error ? error.message : String(error) });
  };
  function appWith(handlers: RequestHandler[]) {
    const app = express();
    app.get('/x', inSeries(handlers));
    app.get('/x', (_req, res) => {
      res.json({ route: 'second' });
    });
    app.use(onError);
    return app;
  }
  beforeEach(() => seen.splice(0));

  test('When every handler calls next, then they run in order and the last answers', async () => {
    const res = await request(appWith([step('a'), step('b'), (_req, r) => void r.json({ route: 'first' })])).get('/x');
    expect(res.body).toEqual({ route: 'first' });
    expect(seen).toEqual(['a', 'b']);
  });

  test('When a handler passes an error to next, then the rest is skipped and the error handler answers', async () => {
    const res = await request(appWith([step('a'), (_req, _r, next) => next(new Error('refused')), step('c')])).get('/x');
    expect(res.status).toBe(500);
    expect(res.body).toEqual({ caught: 'refused' });
    expect(seen).toEqual(['a']);
  });

  test('When an async handler rejects, then its error reaches the error handler (as Express 5 does for a layer)', async () => {
    const res = await request(
      appWith([
        step('a'),
        async () => {
          await Promise.resolve();
          throw new Error('rejected later');
        },
        step('c'),
      ]),
    ).get('/x');
    expect(res.status).toBe(500);
    expect(res.body).toEqual({ caught: 'rejected later' });
    expect(seen).toEqual(['a']);
  });

  test("When a handler calls next('route'), then the next matching route answers", async () => {
    const res = await request(appWith([step('a'), (_req, _r, next) => next('route'), step('c')])).get('/x');
    expect(res.body).toEqual({ route: 'second' });
    expect(seen).toEqual(['a']);
  });
});

describe('the service with one layer per route', () => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext();
    await addTestModel(ctx.db);
  });
  afterAll(() => ctx.close());

  test('When the handler throws after an await (unknown model), then the API error format answers and nothing is held', async () => {
    const user = userWithRole('user');
    await grantDirect(ctx.db, user.id, 100);
    const res = await request(ctx.app)
      .post('/api/streaming-sessions/initialize')
      .set('Authorization', user.auth)
      .send({ modelId: 'no-such-model', estimatedInputTokens: 10, estimatedOutputTokens: 10 });
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
    expect(res.body.error.code).toEqual(expect.any(String));
    expect(res.headers['x-request-id']).toEqual(expect.any(String));
    expect(await count(ctx.db, 'streaming_sessions', 'user_id = $1', [user.id])).toBe(0);
  });

  test('When validation refuses the body, then the handler never runs (400, nothing held)', async () => {
    const user = userWithRole('user');
    await grantDirect(ctx.db, user.id, 100);
    const res = await request(ctx.app)
      .post('/api/streaming-sessions/initialize')
      .set('Authorization', user.auth)
      .send({ modelId: TEST_MODEL, estimatedInputTokens: -1, estimatedOutputTokens: 10 });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('VALIDATION_ERROR');
    expect(await count(ctx.db, 'streaming_sessions', 'user_id = $1', [user.id])).toBe(0);
  });

  test('When the API router comes before the docs and the console, then both are still served and an unknown API path is a 404', async () => {
    expect((await request(ctx.app).get('/api/docs/')).status).toBe(200);
    // The console router (its own CSP) still sees /admin/, whether or not its bundle is built.
    const consolePage = await request(ctx.app).get('/admin/');
    const api = await request(ctx.app).get('/health');
    expect(consolePage.headers['content-security-policy']).toEqual(expect.any(String));
    expect(consolePage.headers['content-security-policy']).not.toBe(api.headers['content-security-policy']);
    const missing = await request(ctx.app).get('/api/no-such-area');
    expect(missing.status).toBe(404);
    expect(missing.body.error.code).toBe('NOT_FOUND');
  });
});

describe('the hot path taking connections straight from the pool', () => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext({ DATABASE_POOL_MAX: '2', DB_ACQUIRE_TIMEOUT_MS: '300' });
    await addTestModel(ctx.db);
  });
  afterAll(() => ctx.close());

  test('When every pooled connection is busy past the acquire timeout, then initialize answers 503 SERVICE_UNAVAILABLE and holds nothing', async () => {
    const user = userWithRole('user');
    await grantDirect(ctx.db, user.id, 100);
    const manager = ctx.db.sequelize.connectionManager;
    const held = [await manager.getConnection({ type: 'write' }), await manager.getConnection({ type: 'write' })];
    try {
      const res = await request(ctx.app)
        .post('/api/streaming-sessions/initialize')
        .set('Authorization', user.auth)
        .send({ modelId: TEST_MODEL, estimatedInputTokens: 10, estimatedOutputTokens: 10 });
      expect(res.status).toBe(503);
      expect(res.body.error.code).toBe('SERVICE_UNAVAILABLE');
      expect(res.body.error.message).toMatch(/busy/);
      expect(res.headers['retry-after']).toBe('1');
    } finally {
      for (const connection of held) manager.releaseConnection(connection);
    }
    expect(await count(ctx.db, 'streaming_sessions', 'user_id = $1', [user.id])).toBe(0);
    // The pool is whole again: the same request now opens the session.
    const ok = await request(ctx.app)
      .post('/api/streaming-sessions/initialize')
      .set('Authorization', user.auth)
      .send({ modelId: TEST_MODEL, estimatedInputTokens: 10, estimatedOutputTokens: 10 });
    expect(ok.status).toBe(201);
  });
});
