import type { ErrorCode } from './errors';

/** HTTP status of every error code, in one place (API.md's table). */
export const STATUS_OF: Record<ErrorCode, number> = {
  VALIDATION_ERROR: 400,
  INVALID_JSON: 400,
  UNKNOWN_MODEL: 400,
  UNAUTHENTICATED: 401,
  INSUFFICIENT_CREDITS: 402,
  BUDGET_EXCEEDED: 402,
  UNPAID_LIMIT: 402,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  SESSION_NOT_ACTIVE: 409,
  IDEMPOTENCY_IN_PROGRESS: 409,
  CONFLICT: 409,
  PAYLOAD_TOO_LARGE: 413,
  // Not in API.md's table: headers over Node's 16 KB limit, answered before routing (clientErrorHandler).
  HEADERS_TOO_LARGE: 431,
  UNSUPPORTED_MEDIA_TYPE: 415,
  IDEMPOTENCY_KEY_REUSED: 422,
  RATE_LIMITED: 429,
  SERVICE_UNAVAILABLE: 503,
  INTERNAL: 500,
};

/**
 * HTTP status of what a successful operation did, in one place: services say whether they created something
 * or completed an operation on something that exists, never a status. The idempotency store keeps the status
 * it answered with, so a replay answers exactly the same.
 */
export type Effect = 'created' | 'done' | 'accepted' | 'deleted';
export const STATUS_OF_EFFECT: Record<Effect, number> = { created: 201, done: 200, accepted: 202, deleted: 204 };
const EFFECTS: Effect[] = ['created', 'done', 'accepted', 'deleted'];
export const effectOfStatus = (status: number): Effect => EFFECTS.find((effect) => STATUS_OF_EFFECT[effect] === status) ?? 'done';
