import request from 'supertest';
import { createTestContext, type TestContext } from '../support/context';
import { bearer, tokenFor } from '../support/tokens';

let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext({ BODY_LIMIT: '1kb' });
});
afterAll(() => ctx.close());

const auth = () => bearer(tokenFor());

describe('health and readiness', () => {
  test('When the process is up, then /health answers 200', async () => {
    const res = await request(ctx.app).get('/health');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: 'ok' });
  });

  test('When the database is reachable and migrated, then /ready answers 200', async () => {
    const res = await request(ctx.app).get('/ready');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: 'ready', checks: { database: 'ok', migrations: 'ok', draining: false } });
  });

  test('When the service is draining, then /ready answers 503', async () => {
    ctx.lifecycle.draining = true;
    try {
      const res = await request(ctx.app).get('/ready');
      expect(res.status).toBe(503);
      expect(res.body.checks.draining).toBe(true);
    } finally {
      ctx.lifecycle.draining = false;
    }
  });
});

describe('error format', () => {
  test('When the route does not exist, then 404 NOT_FOUND in the error format', async () => {
    const res = await request(ctx.app).get('/api/nope').set('Authorization', auth());
    expect(res.status).toBe(404);
    expect(res.body).toEqual({ error: { code: 'NOT_FOUND', message: expect.any(String), details: {}, requestId: expect.any(String) } });
  });

  test('When an error has nothing to add (401, 403, INVALID_JSON, 415), then details is still there, empty', async () => {
    const user = await request(ctx.app).get('/api/credits/balance');
    const forbidden = await request(ctx.app).get('/api/usage/system-stats').set('Authorization', auth());
    const badJson = await request(ctx.app).post('/api/credits/check').set('Authorization', auth()).set('Content-Type', 'application/json').send('{');
    const notJson = await request(ctx.app).post('/api/credits/check').set('Authorization', auth()).set('Content-Type', 'text/plain').send('x');
    expect([user.status, forbidden.status, badJson.status, notJson.status]).toEqual([401, 403, 400, 415]);
    for (const res of [user, forbidden, badJson, notJson]) {
      expect(Object.keys(res.body.error).sort()).toEqual(['code', 'details', 'message', 'requestId']);
      expect(res.body.error.details).toEqual({});
    }
  });

  test('When the JSON is unparsable, then 400 INVALID_JSON', async () => {
    const res = await request(ctx.app)
      .post('/api/nope')
      .set('Authorization', auth())
      .set('Content-Type', 'application/json')
      .send('{"credits": ');
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('INVALID_JSON');
    expect(JSON.stringify(res.body)).not.toMatch(/at .*\.js|SyntaxError/);
  });

  test('When the body is over the limit, then 413 PAYLOAD_TOO_LARGE', async () => {
    const res = await request(ctx.app)
      .post('/api/nope')
      .set('Authorization', auth())
      .set('Content-Type', 'application/json')
      .send(JSON.stringify({ note: 'x'.repeat(5000) }));
    expect(res.status).toBe(413);
    expect(res.body.error.code).toBe('PAYLOAD_TOO_LARGE');
  });

  test('When a body is not JSON, then 415 UNSUPPORTED_MEDIA_TYPE', async () => {
    const res = await request(ctx.app).post('/api/nope').set('Authorization', auth()).set('Content-Type', 'text/plain').send('credits=5');
    expect(res.status).toBe(415);
    expect(res.body.error.code).toBe('UNSUPPORTED_MEDIA_TYPE');
  });

  test('When the caller sends an X-Request-Id, then it is echoed in the header and the error', async () => {
    const res = await request(ctx.app).get('/api/nope').set('X-Request-Id', 'trace-123');
    expect(res.headers['x-request-id']).toBe('trace-123');
    expect(res.body.error.requestId).toBe('trace-123');
  });

  test('When a response is sent, then helmet headers are present and no framework is advertised', async () => {
    const res = await request(ctx.app).get('/health');
    expect(res.headers['x-powered-by']).toBeUndefined();
    expect(res.headers['x-content-type-options']).toBe('nosniff');
  });

  test('When a browser from an unlisted origin asks, then no CORS allow header is given', async () => {
    const res = await request(ctx.app).options('/api/me').set('Origin', 'https://evil.example').set('Access-Control-Request-Method', 'GET');
    expect(res.headers['access-control-allow-origin']).toBeUndefined();
  });
});
