import cors from 'cors';
import express from 'express';
import helmet from 'helmet';
import request from 'supertest';
import { createTestContext, type TestContext } from '../support/context';

// The service sets helmet's and CORS's headers from a record taken once at start-up instead of running both
// per request (docs/performance.md). Whatever the request, the headers must be exactly what helmet and cors
// themselves give, in the same order.
let ctx: TestContext;
const ALLOWED = 'https://console.example.com';
beforeAll(async () => {
  ctx = await createTestContext({ CORS_ORIGINS: ALLOWED });
});
afterAll(() => ctx.close());

/** helmet then cors, run per request as the service did before. */
function referenceApp() {
  const app = express();
  app.disable('x-powered-by');
  app.use(helmet());
  app.use(cors({ origin: [ALLOWED], exposedHeaders: ['X-Request-Id', 'Idempotent-Replayed', 'Retry-After'] }));
  app.get('/health', (_req, res) => {
    res.json({ status: 'ok' });
  });
  return app;
}

// Set by other middleware or per response, not by helmet or cors.
const PER_RESPONSE = new Set(['date', 'etag', 'x-request-id', 'content-length', 'connection', 'keep-alive']);
const securityAndCors = (headers: Record<string, string>) => Object.entries(headers).filter(([name]) => !PER_RESPONSE.has(name));

describe('security and CORS headers', () => {
  test.each([
    ['a plain GET (no Origin)', {}],
    ['a GET from the allowed origin', { Origin: ALLOWED }],
    ['a GET from another origin', { Origin: 'https://evil.example' }],
  ])('When the service answers %s, then its headers are exactly helmet and cors', async (_what, headers) => {
    const service = await request(ctx.app).get('/health').set(headers);
    const reference = await request(referenceApp()).get('/health').set(headers);

    expect(service.status).toBe(200);
    expect(securityAndCors(service.headers)).toEqual(securityAndCors(reference.headers));
    expect(service.headers['x-content-type-options']).toBe('nosniff');
  });

  test('When a browser sends a preflight, then cors answers it as before', async () => {
    const preflight = (app: express.Express) =>
      request(app).options('/health').set('Origin', ALLOWED).set('Access-Control-Request-Method', 'GET').set('Access-Control-Request-Headers', 'authorization');

    const service = await preflight(ctx.app);
    const reference = await preflight(referenceApp());

    expect(service.status).toBe(204);
    expect(service.headers['access-control-allow-origin']).toBe(ALLOWED);
    expect(securityAndCors(service.headers)).toEqual(securityAndCors(reference.headers));
  });

  test('When the docs page is served, then it gets its own CSP, not the API one', async () => {
    const docs = await request(ctx.app).get('/api/docs/');
    const api = await request(ctx.app).get('/health');

    expect(docs.headers['content-security-policy']).toContain("connect-src 'self'");
    expect(docs.headers['content-security-policy']).not.toContain('upgrade-insecure-requests');
    expect(api.headers['content-security-policy']).toBe(await request(referenceApp()).get('/health').then((r) => r.headers['content-security-policy']));
  });
});

describe('/health answered from a record', () => {
  test('When /health is asked, then its body, type and ETag are what res.json gives, and If-None-Match and HEAD work as for any response', async () => {
    const service = await request(ctx.app).get('/health');
    const reference = await request(referenceApp()).get('/health');

    expect(service.body).toEqual({ status: 'ok' });
    expect(service.text).toBe(reference.text);
    expect(service.headers['content-type']).toBe(reference.headers['content-type']);
    expect(service.headers['content-length']).toBe(reference.headers['content-length']);
    expect(service.headers.etag).toBe(reference.headers.etag);

    const revalidated = await request(ctx.app).get('/health').set('If-None-Match', service.headers.etag);
    expect(revalidated.status).toBe(304);
    expect(revalidated.text).toBe('');
    const head = await request(ctx.app).head('/health');
    expect(head.status).toBe(200);
    expect(head.headers.etag).toBe(reference.headers.etag);
    expect(head.text).toBeUndefined();
  });
});
