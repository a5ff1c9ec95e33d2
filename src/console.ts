import fs from 'node:fs';
import path from 'node:path';
import express, { type RequestHandler, type Router } from 'express';
import jwt from 'jsonwebtoken';
import type { Config } from './config';
import { AppError, forbidden } from './lib/errors';

/**
 * The admin console (issue #17): a static single-page app built by `npm run build` into dist/console and
 * served at /admin with its own strict CSP (the API's helmet CSP is left as it is). The page loads
 * without a token; every API call it makes carries the token the operator pasted (docs/console.md).
 */

/** No inline script or style, nothing from another origin; the API is same-origin. */
export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "manifest-src 'self'",
  "form-action 'self'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
  "object-src 'none'",
].join('; ');

/** Marker in index.html that becomes a meta tag telling the page whether the development sign-in exists. */
const DEV_SIGN_IN_MARKER = '<!--dev-sign-in-->';
const DEV_TOKEN_TTL_SECONDS = 12 * 3600;

/** Where the built console is: dist/console under the project root, whether running from src/ or dist/src/. */
export function consoleBundleDir(): string | undefined {
  const candidates = [path.resolve(__dirname, '..', 'dist', 'console'), path.resolve(__dirname, '..', 'console')];
  return candidates.find((dir) => fs.existsSync(path.join(dir, 'index.html')));
}

/** Local embedded mode only: NODE_ENV=development, no DATABASE_URL, and a secret this service can sign with. */
export function devSignInEnabled(config: Config): boolean {
  return config.NODE_ENV === 'development' && config.embeddedDatabase && config.jwt.algorithm === 'HS256';
}

export function consoleRouter(config: Config, bundleDir?: string): Router {
  const router = express.Router({ strict: false });
  const devSignIn = devSignInEnabled(config);

  router.use((_req, res, next) => {
    res.locals.routeLabel = '/admin';
    res.setHeader('Content-Security-Policy', CONSOLE_CSP);
    next();
  });

  if (devSignIn) router.post('/dev-sign-in', devSignInHandler(config));

  // Found lazily, so a console built after the service started is served without a restart.
  let bundle: { html: string; serveAssets: RequestHandler; serveFiles: RequestHandler } | undefined;
  const load = () => {
    const dir = bundleDir ?? consoleBundleDir();
    if (bundle || !dir || !fs.existsSync(path.join(dir, 'index.html'))) return bundle;
    const html = fs
      .readFileSync(path.join(dir, 'index.html'), 'utf8')
      .replace(DEV_SIGN_IN_MARKER, devSignIn ? '<meta name="dev-sign-in" content="available">' : '');
    bundle = {
      html,
      // File names carry a content hash, so they can be cached for good.
      serveAssets: express.static(path.join(dir, 'assets'), { immutable: true, maxAge: '365d', index: false }),
      serveFiles: express.static(dir, { index: false }),
    };
    return bundle;
  };

  const sendIndex: RequestHandler = (_req, res, next) => {
    const loaded = load();
    if (!loaded) {
      // In the API's error format, through the one error handler, like every other refusal.
      return next(new AppError('SERVICE_UNAVAILABLE', 'The admin console is not built: run `npm run build` (npm start builds it when missing)'));
    }
    // The bare /admin gets the same page: its asset URLs are absolute (/admin/assets/...).
    res.setHeader('Cache-Control', 'no-store');
    res.type('html').send(loaded.html);
  };
  router.get('/', sendIndex);
  router.get('/index.html', sendIndex);
  router.use('/assets', (req, res, next) => (load() ? load()!.serveAssets(req, res, next) : next()));
  router.use((req, res, next) => (load() ? load()!.serveFiles(req, res, next) : next()));
  return router;
}

/**
 * Mints a 12-hour admin token for the local operator. Mounted only in local embedded mode (see
 * devSignInEnabled); a JSON Content-Type is required, so a cross-site form cannot trigger it, and CORS keeps
 * other origins from reading the answer.
 */
function devSignInHandler(config: Config): RequestHandler {
  return (req, res, next) => {
    if (!req.is('application/json') || (req.headers['sec-fetch-site'] && req.headers['sec-fetch-site'] !== 'same-origin')) {
      return next(forbidden('The development sign-in answers only the console itself'));
    }
    const token = jwt.sign({ sub: 'dev-admin', role: 'admin', username: 'dev-admin' }, config.jwt.key, {
      algorithm: 'HS256',
      expiresIn: DEV_TOKEN_TTL_SECONDS,
      ...(config.jwt.issuer ? { issuer: config.jwt.issuer } : {}),
      ...(config.jwt.audience ? { audience: config.jwt.audience } : {}),
    });
    res.setHeader('Cache-Control', 'no-store');
    res.json({ token, expiresAt: new Date(Date.now() + DEV_TOKEN_TTL_SECONDS * 1000).toISOString() });
  };
}
