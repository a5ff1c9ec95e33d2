import cors from 'cors';
import express, { type Express, type RequestHandler, type Response } from 'express';
import helmet from 'helmet';
import swaggerUi from 'swagger-ui-express';
import type { Config } from './config';
import { consoleRouter } from './console';
import type { Lifecycle } from './controllers/health.controller';
import type { Database } from './db/database';
import { AppError } from './lib/errors';
import { findDuplicateKey } from './lib/json-duplicates';
import { createHttpLogger, type Logger } from './lib/logger';
import { Metrics, databaseMetricSources } from './lib/metrics';
import { errorHandler, notFoundHandler } from './middleware/error.middleware';
import { readIdempotencyKey } from './middleware/idempotency.middleware';
import { authenticateJWT, requireAdmin, requireAuthenticated, requireSupervisor } from './middleware/jwt.middleware';
import { createRateLimiters } from './middleware/rate-limit.middleware';
import { requestId } from './middleware/request-id.middleware';
import { validate } from './middleware/validate';
import { apiAreas, createApiRouter, probeRoutes } from './routes/api.routes';
import { operationsRoutes } from './routes/operations.routes';
import { mountRoutes, type RouteChain, type RouteSpec } from './routes/route-table';
import { createServices, type Services } from './services';
import { inSeries } from './lib/in-series';

export { inSeries };

export interface AppDependencies {
  config: Config;
  db: Database;
  logger: Logger;
  lifecycle?: Lifecycle;
  /** Prometheus metrics of this app (a fresh registry per app unless given). */
  metrics?: Metrics;
}

export interface App {
  app: Express;
  services: Services;
  routes: RouteSpec[];
  lifecycle: Lifecycle;
  metrics: Metrics;
  /** Releases what the app holds besides the database (the rate-limit Redis connection). */
  close(): Promise<void>;
}

/**
 * Requests with a body must say it is JSON; anything else is refused before parsing. A request with neither
 * Content-Length nor Transfer-Encoding has no body (type-is's definition, which the JSON parser uses too):
 * it skips the parser, which would only set req.body = undefined for it.
 */
function jsonBody(limit: string): RequestHandler {
  // A body that names a key twice in one object is refused before it is parsed (src/lib/json-duplicates.ts).
  const verify = (_req: unknown, _res: unknown, raw: Buffer, encoding: string) => {
    const path = findDuplicateKey(raw.toString(encoding as BufferEncoding));
    if (path) {
      throw new AppError('VALIDATION_ERROR', 'The request is not valid', {
        problems: [{ location: 'body', path: path.join('.'), message: 'is given more than once' }],
      });
    }
  };
  const parse = express.json({ limit, strict: true, verify });
  return (req, res, next) => {
    const length = req.headers['content-length'];
    const chunked = req.headers['transfer-encoding'] !== undefined;
    if (length === undefined && !chunked) {
      if (!Reflect.has(req, 'body')) req.body = undefined; // as the parser does
      return next();
    }
    if ((Number(length ?? 0) > 0 || chunked) && !req.is('application/json')) {
      return next(new AppError('UNSUPPORTED_MEDIA_TYPE', 'Request bodies must be JSON (Content-Type: application/json)'));
    }
    parse(req, res, next);
  };
}

/** Builds the Express app without listening, so tests get a fresh app on a fresh database. */
export function createApp({ config, db, logger, lifecycle = { draining: false }, metrics = new Metrics() }: AppDependencies): App {
  const services = createServices(db, config, metrics);
  const areas = apiAreas(services);
  // Operations (issue #8): OpenAPI document, metrics, logs, rate limits, Swagger UI.
  const probes = probeRoutes(db, lifecycle);
  const operations = operationsRoutes({ routes: () => routes, metrics, metricsEnabled: config.METRICS_ENABLED, metricsToken: config.METRICS_TOKEN });
  // Every route, in one table: the OpenAPI document is generated from it.
  const routes: RouteSpec[] = [...probes, ...areas.flatMap((area) => area.specs), ...operations];
  const outsideApi = [...probes, ...operations];
  metrics.connect(databaseMetricSources(db, config.DATABASE_POOL_MAX));
  db.observeReads((target) => metrics.dbReads.inc({ target }));
  const limiters = createRateLimiters(config, logger, metrics);

  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', config.TRUST_PROXY);
  app.set('query parser', 'simple');
  // What every response needs, as one layer: request id, metrics, the request logger, draining, then helmet
  // everywhere (a relaxed CSP for Swagger UI) and CORS. No origin is allowed unless configured: browsers are
  // not this service's usual callers.
  app.use(
    inSeries([
      requestId,
      metrics.middleware(),
      createHttpLogger(logger),
      closeConnectionsWhileDraining(lifecycle),
      responseHeaders(cors({ origin: config.CORS_ORIGINS, exposedHeaders: ['X-Request-Id', 'Idempotent-Replayed', 'Retry-After'] })),
    ]),
  );
  // Disabled limiters are not mounted at all (each mounted layer is per-request work for the router).
  if (config.RATE_LIMIT_ENABLED) app.use('/api', limiters.perIp);
  app.use(jsonBody(config.BODY_LIMIT));
  const authenticate = authenticateJWT(config.jwt, services.users);
  const authenticateOnly = authenticateJWT(config.jwt, services.users, { mirror: false });
  const roleCheck = { user: requireAuthenticated, supervisor: requireSupervisor, admin: requireAdmin } as const;
  // What each declared route runs before its handler: auth, per-user limit, role, validation, idempotency key.
  const chain: RouteChain = (spec) => [
    ...(spec.access === 'public' ? [] : [spec.mirrorsUser ? authenticateOnly : authenticate, ...(config.RATE_LIMIT_ENABLED ? [limiters.perUser] : []), roleCheck[spec.access]]),
    validate(spec.request ?? {}),
    ...(spec.idempotent ? [readIdempotencyKey] : []),
  ];
  // Probes, metrics and the OpenAPI document first (none of them is under /api/docs or /admin), so a
  // load balancer's /health does not pass the docs' and the console's layers; as routes of the app's own
  // router, not a router of their own (one router level less per probe).
  mountRoutes(app, outsideApi, '', chain);
  // The API next, ahead of Swagger UI's two layers and the console's: no API route is under /api/docs or
  // /admin, so a docs or console request falls through the API router unchanged.
  app.use('/api', createApiRouter(areas, chain));
  mountSwaggerUi(app);
  app.use('/admin', consoleRouter(config)); // the admin console (issue #17): static, own CSP

  app.use(notFoundHandler);
  app.use(errorHandler(logger));
  return { app, services, routes, lifecycle, metrics, close: limiters.close };
}

type HeaderOp = readonly [name: string, value: number | string | readonly string[] | undefined];

/**
 * What `middleware` does to the response headers of `req`, recorded once by running it against a stand-in
 * response: the setHeader/removeHeader calls in order (a `Vary` is recorded as such and replayed with
 * res.vary). null when it did anything else (ended the response, failed, went asynchronous), so the caller
 * keeps running the middleware itself.
 */
function recordHeaders(middleware: RequestHandler, req: { method: string; url: string; headers: Record<string, string> }): HeaderOp[] | null {
  const ops: HeaderOp[] = [];
  const headers = new Map<string, unknown>();
  let passed = false;
  const res = {
    getHeader: (name: string) => headers.get(name.toLowerCase()),
    setHeader(name: string, value: HeaderOp[1]) {
      headers.set(name.toLowerCase(), value);
      ops.push([name, value]);
      return res;
    },
    removeHeader(name: string) {
      headers.delete(name.toLowerCase());
      ops.push([name, undefined]);
    },
  };
  try {
    middleware({ ...req, path: req.url } as never, res as never, (error?: unknown) => {
      passed = error === undefined;
    });
  } catch {
    return null;
  }
  return passed ? ops : null;
}

function replay(res: Response, ops: HeaderOp[]): void {
  for (const [name, value] of ops) {
    if (value === undefined) res.removeHeader(name);
    // Vary merges with what is there; on a response that has none yet (the usual case) it is a plain set.
    else if (name === 'Vary' && res.getHeader('Vary') !== undefined) res.vary(String(value));
    else res.setHeader(name, value);
  }
}

/**
 * helmet on every response (Swagger UI's page gets a CSP that lets its own scripts, styles and images
 * load), then CORS. helmet's headers are the same for every request and so are CORS's for a request without
 * an Origin header that is not a preflight (Vary: Origin and the exposed headers): they are recorded once
 * from helmet and cors themselves and set from that record, instead of running both per request
 * (docs/performance.md). Browsers' requests (with Origin), preflights and the docs page run them as before.
 */
function responseHeaders(corsMiddleware: RequestHandler): RequestHandler {
  const api = helmet();
  const docs = helmet({
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        defaultSrc: ["'self'"],
        scriptSrc: ["'self'"],
        styleSrc: ["'self'", "'unsafe-inline'"],
        imgSrc: ["'self'", 'data:'],
        fontSrc: ["'self'", 'data:'],
        connectSrc: ["'self'"],
        objectSrc: ["'none'"],
        frameAncestors: ["'self'"],
        baseUri: ["'self'"],
      },
    },
  });
  const plainRequest = { method: 'GET', url: '/api', headers: {} };
  const apiHeaders = recordHeaders(api, plainRequest);
  const corsHeaders = recordHeaders(corsMiddleware, plainRequest);
  const isDocs = (path: string) => path === '/api/docs' || path.startsWith('/api/docs/');
  return (req, res, next) => {
    const withCors = () => {
      if (corsHeaders && req.headers.origin === undefined && req.method !== 'OPTIONS') {
        replay(res, corsHeaders);
        next();
      } else corsMiddleware(req, res, next);
    };
    if (apiHeaders && !isDocs(req.path)) {
      replay(res, apiHeaders);
      withCors();
    } else {
      (isDocs(req.path) ? docs : api)(req, res, (error?: unknown) => (error === undefined ? withCors() : next(error)));
    }
  };
}

/** Swagger UI at /api/docs/, reading the document from /api/openapi.json. Public, like the document. */
function mountSwaggerUi(app: Express): void {
  const options = { swaggerUrl: '/api/openapi.json', customSiteTitle: 'Accounting Service API', swaggerOptions: { validatorUrl: null } };
  app.use('/api/docs', (req, res, next) => {
    res.locals.routeLabel = '/api/docs';
    // The page loads its assets relative to itself, so it must be served from /api/docs/.
    if (req.method === 'GET' && req.originalUrl.split('?')[0] === '/api/docs') return res.redirect(301, '/api/docs/');
    next();
  });
  app.use('/api/docs', ...swaggerUi.serveFiles(undefined, options), swaggerUi.setup(undefined, options));
}

/** While draining, responses ask keep-alive clients to close, so the server can finish closing. */
function closeConnectionsWhileDraining(lifecycle: Lifecycle): RequestHandler {
  return (_req, res, next) => {
    if (lifecycle.draining) res.setHeader('Connection', 'close');
    next();
  };
}
