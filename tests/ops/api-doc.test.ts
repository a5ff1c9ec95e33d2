import fs from 'node:fs';
import path from 'node:path';
import request from 'supertest';
import { createTestContext, type TestContext } from '../support/context';

/** docs/api.md is the contract callers read: it must name every route the service serves, and no other. */
const ROOT = path.resolve(__dirname, '../..');
const apiDoc = fs.readFileSync(path.join(ROOT, 'docs/api.md'), 'utf8');

let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext();
});
afterAll(() => ctx.close());

/** `GET /api/credits/balance/:userId` → `get /api/credits/balance/{userId}` (the OpenAPI spelling). */
function routesNamedIn(markdown: string): Set<string> {
  const named = [...markdown.matchAll(/`(GET|POST|PUT|PATCH|DELETE) (\/[^\s`?]*)/g)];
  return new Set(named.map(([, method, route]) => `${method.toLowerCase()} ${route.replace(/:(\w+)/g, '{$1}')}`));
}

describe('docs/api.md', () => {
  test('When the generated OpenAPI document lists a route, then docs/api.md describes it, and names no route the service lacks', async () => {
    const res = await request(ctx.app).get('/api/openapi.json');
    const served = new Set(
      Object.entries(res.body.paths as Record<string, Record<string, unknown>>).flatMap(([route, operations]) =>
        Object.keys(operations).map((method) => `${method} ${route}`),
      ),
    );
    const documented = routesNamedIn(apiDoc);

    expect(served.size).toBeGreaterThan(20);
    expect({
      missingFromDoc: [...served].filter((route) => !documented.has(route)),
      notServed: [...documented].filter((route) => !served.has(route) && route !== 'get /api/docs'),
    }).toEqual({ missingFromDoc: [], notServed: [] });
  });

  test('When the README points at the HTTP contract, then it links docs/api.md inside the repository', () => {
    const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');

    expect(readme).toContain('](docs/api.md)');
    expect(readme).not.toMatch(/\.\.\/shared|API\.md/);
  });
});
