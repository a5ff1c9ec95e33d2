import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import express from 'express';
import request from 'supertest';
import { createApp, type App } from '../../src/app';
import { loadConfig } from '../../src/config';
import { CONSOLE_CSP, consoleRouter } from '../../src/console';
import { errorHandler } from '../../src/middleware/error.middleware';
import { createLogger } from '../../src/lib/logger';
import { createTestContext, type TestContext } from '../support/context';
import { count } from '../support/db';
import { TEST_JWT_SECRET } from '../support/tokens';
import { ROOT, ensureConsoleBuilt, gzippedBundleBytes } from './support';

let ctx: TestContext;
const extraApps: App[] = [];
beforeAll(async () => {
  ensureConsoleBuilt();
  ctx = await createTestContext();
});
afterAll(async () => {
  for (const app of extraApps) await app.close();
  await ctx.close();
});

/** An app on the test database with another configuration (the database URL itself is not used by createApp). */
function appWith(env: Record<string, string>): App {
  const config = loadConfig({ LOG_LEVEL: 'silent', SWEEPER_INTERVAL_MS: '0', RATE_LIMIT_ENABLED: 'false', USER_CACHE_TTL_MS: '0', ...env });
  const app = createApp({ config, db: ctx.db, logger: createLogger('silent') });
  extraApps.push(app);
  return app;
}

describe('GET /admin', () => {
  test('When the console is not built, then /admin is a 503 in the API\u2019s error format', async () => {
    const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'console-not-built-'));
    try {
      const app = express();
      app.use('/admin', consoleRouter(ctx.config, empty));
      app.use(errorHandler(createLogger('silent')));
      const res = await request(app).get('/admin');
      expect(res.status).toBe(503);
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      expect(res.body.error).toMatchObject({ code: 'SERVICE_UNAVAILABLE', details: {}, message: expect.stringContaining('not built') });
    } finally {
      fs.rmSync(empty, { recursive: true, force: true });
    }
  });

  test('When anyone opens /admin without a token, then the page loads with the console CSP, no inline script and no development sign-in', async () => {
    for (const url of ['/admin', '/admin/']) {
      const res = await request(ctx.app).get(url);
      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toMatch(/^text\/html/);
      expect(res.headers['content-security-policy']).toBe(CONSOLE_CSP);
      expect(res.headers['cache-control']).toBe('no-store');
      expect(res.text).toContain('<div id="app"></div>');
      expect(res.text).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/); // every script is a file of this origin
      expect(res.text).not.toContain('dev-sign-in');
      expect(res.text).not.toMatch(/https?:\/\//); // nothing from another origin
    }
    expect(CONSOLE_CSP).toContain("default-src 'none'");
    expect(CONSOLE_CSP).toContain("script-src 'self'");
    expect(CONSOLE_CSP).not.toContain('unsafe');
  });

  test('When the page asks for its script and stylesheet, then they are served from /admin/assets with the console CSP and a long cache', async () => {
    const html = (await request(ctx.app).get('/admin')).text;
    const assets = [...html.matchAll(/(?:src|href)="(\/admin\/assets\/[^"]+)"/g)].map((m) => m[1]);
    expect(assets.length).toBeGreaterThanOrEqual(2);
    for (const asset of assets) {
      const res = await request(ctx.app).get(asset);
      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toMatch(/javascript|css/);
      expect(res.headers['content-security-policy']).toBe(CONSOLE_CSP);
      expect(res.headers['cache-control']).toContain('immutable');
    }
    const missing = await request(ctx.app).get('/admin/assets/nope.js');
    expect(missing.status).toBe(404);
    expect(missing.body.error.code).toBe('NOT_FOUND');
  });

  test('When the API is called, then it keeps its own helmet CSP (the console policy applies to /admin only)', async () => {
    const res = await request(ctx.app).get('/health');
    expect(res.headers['content-security-policy']).toBeDefined();
    expect(res.headers['content-security-policy']).not.toBe(CONSOLE_CSP);
    expect(res.headers['content-security-policy']).toContain("default-src 'self'");
  });
});

describe('POST /admin/dev-sign-in', () => {
  const signIn = (app: App['app']) => request(app).post('/admin/dev-sign-in').set('Content-Type', 'application/json').send('{}');

  test('When the service is not in local embedded development mode, then the endpoint does not exist and the page offers no development sign-in', async () => {
    const modes: Record<string, string>[] = [
      {}, // the test context: NODE_ENV=test with a DATABASE_URL
      { NODE_ENV: 'development', DATABASE_URL: ctx.databaseUrl, JWT_SECRET: TEST_JWT_SECRET },
      { NODE_ENV: 'production', JWT_SECRET: TEST_JWT_SECRET, METRICS_TOKEN: 'metrics-token-for-console-tests' },
      { NODE_ENV: 'test', JWT_SECRET: TEST_JWT_SECRET },
    ];
    for (const env of modes) {
      const app = Object.keys(env).length === 0 ? ctx.app : appWith(env).app;
      const res = await signIn(app);
      expect(res.status).toBe(404);
      expect(res.body.error.code).toBe('NOT_FOUND');
      expect(res.body.token).toBeUndefined();
      expect((await request(app).get('/admin')).text).not.toContain('dev-sign-in');
    }
  });

  test('When an RS256 service runs in local development, then there is no development sign-in (it holds no signing key)', async () => {
    const { publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
    const app = appWith({
      NODE_ENV: 'development',
      JWT_ALGORITHM: 'RS256',
      JWT_PUBLIC_KEY: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
      // Required with RS256 (no JWT secret to derive the webhook-secret key from).
      WEBHOOK_SECRET_KEY: 'console-test-webhook-secret-key-0123456789',
    }).app;
    expect((await signIn(app)).status).toBe(404);
  });

  test('When the service runs in local embedded development mode, then one click mints an admin token that the API accepts', async () => {
    const app = appWith({ NODE_ENV: 'development', JWT_SECRET: TEST_JWT_SECRET }).app;
    const page = await request(app).get('/admin');
    expect(page.text).toContain('<meta name="dev-sign-in" content="available">');

    const res = await signIn(app);
    expect(res.status).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(typeof res.body.token).toBe('string');
    expect(Date.parse(res.body.expiresAt)).toBeGreaterThan(Date.now());

    const me = await request(app).get('/api/me').set('Authorization', `Bearer ${res.body.token}`);
    expect(me.status).toBe(200);
    expect(me.body).toMatchObject({ userId: 'dev-admin', role: 'admin' });
    expect(await count(ctx.db, 'user_accounts', "id = 'dev-admin' AND role = 'admin'")).toBe(1);
    const stats = await request(app).get('/api/usage/system-stats').set('Authorization', `Bearer ${res.body.token}`);
    expect(stats.status).toBe(200);
  });

  test('When another site or a form posts to the development sign-in, then it is refused', async () => {
    const app = appWith({ NODE_ENV: 'development', JWT_SECRET: TEST_JWT_SECRET }).app;
    const crossSite = await request(app).post('/admin/dev-sign-in').set('Content-Type', 'application/json').set('Sec-Fetch-Site', 'cross-site').send('{}');
    expect(crossSite.status).toBe(403);
    expect(crossSite.body.token).toBeUndefined();
    const form = await request(app).post('/admin/dev-sign-in').type('form').send('a=1');
    expect(form.status).toBe(415); // the service refuses non-JSON bodies before any route
    expect(form.body.token).toBeUndefined();
    const noBody = await request(app).post('/admin/dev-sign-in');
    expect(noBody.status).toBe(403);
  });
});

describe('bundle size', () => {
  test('When the console is built, then everything the browser downloads is under 300 KB gzipped, as docs/console.md reports', () => {
    const { total, files } = gzippedBundleBytes();
    const kb = total / 1024;
    console.log(`admin console bundle: ${kb.toFixed(1)} KB gzipped (${files.map((f) => `${f.file} ${(f.bytes / 1024).toFixed(1)} KB`).join(', ')})`);
    expect(kb).toBeLessThan(300);
    // The size in the docs stays honest: within 10% (or 3 KB) of the real one.
    const documented = /Bundle size: \*\*([\d.]+) KB\*\* gzipped/.exec(fs.readFileSync(path.join(ROOT, 'docs', 'console.md'), 'utf8'));
    expect(documented).not.toBeNull();
    expect(Math.abs(Number(documented![1]) - kb)).toBeLessThanOrEqual(Math.max(3, kb * 0.1));
  });
});
