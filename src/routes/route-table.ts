import { Router, type Request, type RequestHandler, type Response } from 'express';
import type { z, ZodType } from 'zod';
import type { ErrorCode } from '../lib/errors';
import { inSeries } from '../lib/in-series';
import { idempotencyOf } from '../middleware/idempotency.middleware';
import type { IdempotencyContext } from '../services/idempotency.service';
import type { TokenUser } from '../services/user-account.service';

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

/** The request parts a route validates. */
export interface RequestSchemas {
  body?: ZodType;
  query?: ZodType;
  params?: ZodType;
}

type Parsed<S, Absent> = S extends ZodType ? z.output<S> : Absent;

/** What a typed handler receives: the validated input (typed by the route's zod schemas) and the caller. */
export interface HandlerInput<R extends RequestSchemas = RequestSchemas, A extends Access = Access> {
  body: Parsed<R['body'], undefined>;
  query: Parsed<R['query'], Record<string, never>>;
  params: Parsed<R['params'], Record<string, never>>;
  /** The verified caller (none on public routes). */
  caller: A extends 'public' ? undefined : TokenUser;
  /** The Idempotency-Key context, when the route accepts one and the request carried it. */
  idempotency: IdempotencyContext | undefined;
  req: Request;
}

/** A route handler: validated, typed input in; a response written to `res`. */
export type Handler<R extends RequestSchemas = RequestSchemas, A extends Access = Access> = (
  input: HandlerInput<R, A>,
  res: Response,
) => Promise<void> | void;

/** What a controller method reads: the parts it names, plus the caller and the idempotency context. */
export type Input<T extends object = Record<never, never>> = T & { caller: TokenUser; idempotency: IdempotencyContext | undefined };

/** A RouteSpec whose handler is typed from its own schemas and access (see `route`). */
export type RouteDeclaration<R extends RequestSchemas, A extends Access> = Omit<RouteSpec, 'request' | 'access' | 'handler'> & {
  access: A;
  request?: R;
  handle: Handler<R, A>;
};

/**
 * Declares a route whose handler gets `{ body, query, params, caller, idempotency }` typed from the spec's
 * zod schemas, so controllers never cast: validate() (run before the handler by the route's chain) has
 * parsed exactly these schemas onto req.valid.
 */
export function route<R extends RequestSchemas = Record<never, never>, A extends Access = Access>(declaration: RouteDeclaration<R, A>): RouteSpec {
  const { handle, ...spec } = declaration;
  return {
    ...spec,
    handler: (req, res) =>
      handle(
        {
          body: req.valid.body as HandlerInput<R, A>['body'],
          query: req.valid.query as HandlerInput<R, A>['query'],
          params: req.valid.params as HandlerInput<R, A>['params'],
          caller: req.auth as HandlerInput<R, A>['caller'],
          idempotency: idempotencyOf(req),
          req,
        },
        res,
      ),
  };
}

/** The middleware a spec's declaration turns into (auth, role, validation, idempotency), built by createApp. */
export type RouteChain = (spec: RouteSpec) => RequestHandler[];

/**
 * Mounts every spec on `router` (an express.Router or the app) with its middleware chain, at its path
 * relative to where the router is mounted (`mountedAt`, e.g. `/api`). Specs keep their full paths, which the
 * OpenAPI document and the metrics' route labels (req.baseUrl + req.route.path) use.
 */
export function mountRoutes(router: Pick<Router, RouteSpec['method']>, specs: RouteSpec[], mountedAt: string, chain: RouteChain): void {
  for (const spec of specs) {
    if (!spec.path.startsWith(mountedAt)) throw new Error(`route ${spec.path} does not belong under ${mountedAt}`);
    // The label, the chain and the handler as one layer of the route (same order, same error routing).
    router[spec.method](spec.path.slice(mountedAt.length) || '/', inSeries([labelWith(spec.path), ...chain(spec), spec.handler]));
  }
}

/** Names the request by its route's full pattern for logs and metrics (req.baseUrl is gone once the router is left). */
function labelWith(path: string): RequestHandler {
  return (_req, res, next) => {
    res.locals.routeLabel = path;
    next();
  };
}
