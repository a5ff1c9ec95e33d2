import type { RequestHandler } from 'express';
import type { ZodType } from 'zod';
import type { ErrorCode } from '../lib/errors';

/** Who may call a route. `public` needs no token; the others need at least that role. */
export type Access = 'public' | 'user' | 'supervisor' | 'admin';

/**
 * One route, declared once: src/app.ts mounts it (auth, role check, validation, handler) and the
 * OpenAPI document is generated from the same object, so the docs cannot drift from what is enforced.
 */
export interface RouteSpec {
  method: 'get' | 'post' | 'put' | 'delete';
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
