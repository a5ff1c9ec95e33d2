import cors from 'cors';
import express, { type Express, type RequestHandler } from 'express';
import helmet from 'helmet';
import type { Config } from './config';
import type { Lifecycle } from './controllers/health.controller';
import type { Database } from './db/database';
import { AppError } from './lib/errors';
import type { Logger } from './lib/logger';
import { errorHandler, notFoundHandler } from './middleware/error.middleware';
import { readIdempotencyKey } from './middleware/idempotency.middleware';
import { authenticateJWT, requireRole } from './middleware/jwt.middleware';
import { requestId } from './middleware/request-id.middleware';
import { validate } from './middleware/validate';
import { buildRouteTable } from './routes';
import type { RouteSpec } from './routes/route-table';
import { createServices, type Services } from './services';

export interface AppDependencies {
  config: Config;
  db: Database;
  logger: Logger;
  lifecycle?: Lifecycle;
}

export interface App {
  app: Express;
  services: Services;
  routes: RouteSpec[];
  lifecycle: Lifecycle;
}

/** Requests with a body must say it is JSON; anything else is refused before parsing. */
const requireJsonBody: RequestHandler = (req, _res, next) => {
  const hasBody = Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined;
  if (hasBody && !req.is('application/json')) {
    return next(new AppError('UNSUPPORTED_MEDIA_TYPE', 'Request bodies must be JSON (Content-Type: application/json)'));
  }
  next();
};

/** Builds the Express app without listening, so tests get a fresh app on a fresh database. */
export function createApp({ config, db, logger, lifecycle = { draining: false } }: AppDependencies): App {
  const services = createServices(db, config);
  const routes = buildRouteTable(services, db, lifecycle);

  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', 'loopback');
  app.set('query parser', 'simple');
  app.use(requestId);
  app.use(helmet());
  // No origin is allowed unless configured: browsers are not this service's usual callers.
  app.use(cors({ origin: config.CORS_ORIGINS, exposedHeaders: ['X-Request-Id', 'Idempotent-Replayed', 'Retry-After'] }));
  app.use(requireJsonBody);
  app.use(express.json({ limit: config.BODY_LIMIT, strict: true }));

  const authenticate = authenticateJWT(config.jwt, services.users);
  const authenticateOnly = authenticateJWT(config.jwt, services.users, { mirror: false });
  for (const spec of routes) {
    const chain: RequestHandler[] = [];
    if (spec.access !== 'public') chain.push(spec.mirrorsUser ? authenticateOnly : authenticate, requireRole(spec.access));
    chain.push(validate(spec.request ?? {}));
    if (spec.idempotent) chain.push(readIdempotencyKey);
    chain.push(spec.handler);
    app[spec.method](spec.path, ...chain);
  }

  app.use(notFoundHandler);
  app.use(errorHandler(logger));
  return { app, services, routes, lifecycle };
}
