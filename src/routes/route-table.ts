import { Router, type RequestHandler } from 'express';
import type { ZodType } from 'zod';
import type { ErrorCode } from '../lib/errors';

/** Who may call a route. `public` needs no token; the others need at least that role. */
export type Access = 'public' | 'user' | 'supervisor' | 'admin';

/**
 * One route, declared once: src/routes/api.routes.ts mounts it (auth, role check, validation, handler) and the
 * OpenAPI document is generated from the same object, so the docs cannot drift from what is enforced.
 */
export interface RouteSpec {
  method: 'get' | 'post' | 'put' | 'patch' | 'delete';
  /** Express-style path, e.g. `/api/credits/balance/:userId`. */
  path: string;
  summary: string;
  tags: string[];
  access: Access;
  /**
   * The handler mirrors the caller into user_accounts in its own statement (one round trip for both), so
   * the auth middleware skips its upsert. A request rejected before reaching the database mirrors nothing.
   */
  mirrorsUser?: boolean;
  /** Accepts an `Idempotency-Key` header (POSTs that move money). */
  idempotent?: boolean;
  request?: { body?: ZodType; query?: ZodType; params?: ZodType };
  responses: Record<number, { description: string; schema?: ZodType; contentType?: string }>;
  /** Error codes this route can answer with, beyond the ones every authenticated route has. */
  errors?: ErrorCode[];
  handler: RequestHandler;
}

/** The middleware a spec's declaration turns into (auth, role, validation, idempotency), built by createApp. */
export type RouteChain = (spec: RouteSpec) => RequestHandler[];

/**
 * An express.Router for one area: every spec mounted with its middleware chain, at its path relative to
 * where the router is mounted (`mountedAt`, e.g. `/api/credits`). Specs keep their full paths, which the
 * OpenAPI document and the metrics' route labels (req.baseUrl + req.route.path) use.
 */
export function routerFor(specs: RouteSpec[], mountedAt: string, chain: RouteChain): Router {
  const router = Router();
  for (const spec of specs) {
    if (!spec.path.startsWith(mountedAt)) throw new Error(`route ${spec.path} does not belong under ${mountedAt}`);
    router[spec.method](spec.path.slice(mountedAt.length) || '/', labelWith(spec.path), ...chain(spec), spec.handler);
  }
  return router;
}

/** Names the request by its route's full pattern for logs and metrics (req.baseUrl is gone once the router is left). */
function labelWith(path: string): RequestHandler {
  return (_req, res, next) => {
    res.locals.routeLabel = path;
    next();
  };
}
