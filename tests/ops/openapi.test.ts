import request from 'supertest';
import { buildOpenApiDocument, errorCodesOf, toOpenApiPath } from '../../src/openapi';
import type { RouteSpec } from '../../src/routes/route-table';
import { z } from '../../src/schemas/common';
import { createTestContext, type TestContext } from '../support/context';

let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext();
});
afterAll(() => ctx.close());

type Doc = {
  openapi: string;
  paths: Record<string, Record<string, { security?: unknown[]; parameters?: { name: string; in: string }[]; responses: Record<string, unknown> }>>;
  components: { securitySchemes: Record<string, unknown> };
};

describe('OpenAPI document', () => {
  test('When the document is fetched without a token, then every registered route is in it with its method', async () => {
    const res = await request(ctx.app).get('/api/openapi.json');

    expect(res.status).toBe(200);
    const doc = res.body as Doc;
    expect(doc.openapi).toMatch(/^3\./);
    expect(ctx.routes.length).toBeGreaterThan(3);
    for (const spec of ctx.routes) {
      const operation = doc.paths[toOpenApiPath(spec.path)]?.[spec.method];
      expect({ route: `${spec.method} ${spec.path}`, documented: operation !== undefined }).toEqual({
        route: `${spec.method} ${spec.path}`,
        documented: true,
      });
    }
    const documented = Object.values(doc.paths).reduce((n, item) => n + Object.keys(item).length, 0);
    expect(documented).toBe(ctx.routes.length);
  });

  test('When a route needs a token, then it carries the bearer scheme and 401; public routes carry none', async () => {
    const doc = (await request(ctx.app).get('/api/openapi.json')).body as Doc;

    expect(doc.components.securitySchemes.bearerAuth).toMatchObject({ type: 'http', scheme: 'bearer' });
    for (const spec of ctx.routes) {
      const operation = doc.paths[toOpenApiPath(spec.path)][spec.method];
      if (spec.access === 'public') {
        expect(operation.security).toEqual([]);
      } else {
        expect(operation.security).toEqual([{ bearerAuth: [] }]);
        expect(operation.responses['401']).toBeDefined();
      }
      expect(operation.responses['500']).toBeDefined();
    }
  });

  test('When a route is idempotent, has params and errors, then the document shows the header, path params and every error status', () => {
    const spec: RouteSpec = {
      method: 'post',
      path: '/api/things/:thingId/move',
      summary: 'Move a thing',
      tags: ['Credits'],
      access: 'supervisor',
      idempotent: true,
      request: { params: z.object({ thingId: z.string() }), body: z.object({ credits: z.number() }).strict() },
      responses: { 201: { description: 'Moved', schema: z.object({ ok: z.boolean() }) } },
      errors: ['INSUFFICIENT_CREDITS', 'NOT_FOUND'],
      handler: (_req, res) => void res.end(),
    };
    const doc = buildOpenApiDocument([spec]) as unknown as Doc;
    const operation = doc.paths['/api/things/{thingId}/move'].post;

    expect(operation.parameters).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ name: 'thingId', in: 'path' }),
        expect.objectContaining({ name: 'Idempotency-Key', in: 'header' }),
      ]),
    );
    expect(Object.keys(operation.responses).sort()).toEqual(['201', '400', '401', '402', '403', '404', '409', '413', '415', '422', '429', '500', '503']);
    expect(errorCodesOf(spec)).toEqual(expect.arrayContaining(['VALIDATION_ERROR', 'IDEMPOTENCY_KEY_REUSED', 'FORBIDDEN', 'RATE_LIMITED']));
  });

  test('When a path parameter has no schema, then it is still declared as a string parameter', () => {
    const spec: RouteSpec = {
      method: 'get',
      path: '/api/things/:thingId',
      summary: 'A thing',
      tags: ['Credits'],
      access: 'user',
      responses: { 200: { description: 'The thing' } },
      handler: (_req, res) => void res.end(),
    };
    const doc = buildOpenApiDocument([spec]) as unknown as Doc;

    expect(doc.paths['/api/things/{thingId}'].get.parameters).toEqual([expect.objectContaining({ name: 'thingId', in: 'path', required: true })]);
  });
});

describe('Swagger UI', () => {
  test('When /api/docs is opened, then it redirects to /api/docs/ which serves the UI pointing at the document', async () => {
    const redirect = await request(ctx.app).get('/api/docs');
    const page = await request(ctx.app).get('/api/docs/');
    const init = await request(ctx.app).get('/api/docs/swagger-ui-init.js');

    expect(redirect.status).toBe(301);
    expect(redirect.headers.location).toBe('/api/docs/');
    expect(page.status).toBe(200);
    expect(page.text).toContain('swagger-ui-bundle.js');
    expect(init.text).toContain('"/api/openapi.json"');
  });

  test('When the UI is served, then only its path gets the relaxed CSP; API responses keep helmet defaults', async () => {
    const page = await request(ctx.app).get('/api/docs/');
    const api = await request(ctx.app).get('/api/openapi.json');

    expect(page.headers['content-security-policy']).toContain("style-src 'self' 'unsafe-inline'");
    expect(page.headers['content-security-policy']).not.toContain('upgrade-insecure-requests');
    expect(api.headers['content-security-policy']).toContain('upgrade-insecure-requests');
    expect(api.headers['content-security-policy']).toContain("script-src-attr 'none'");
  });
});
