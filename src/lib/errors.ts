/**
 * The one error type services throw. It carries a stable code from the API contract and no HTTP
 * status: src/middleware/error.middleware.ts maps codes to statuses in one place.
 */
export type ErrorCode =
  | 'VALIDATION_ERROR'
  | 'INVALID_JSON'
  | 'UNKNOWN_MODEL'
  | 'UNAUTHENTICATED'
  | 'INSUFFICIENT_CREDITS'
  | 'BUDGET_EXCEEDED'
  | 'UNPAID_LIMIT'
  | 'FORBIDDEN'
  | 'NOT_FOUND'
  | 'SESSION_NOT_ACTIVE'
  | 'IDEMPOTENCY_IN_PROGRESS'
  | 'CONFLICT'
  | 'PAYLOAD_TOO_LARGE'
  | 'HEADERS_TOO_LARGE'
  | 'UNSUPPORTED_MEDIA_TYPE'
  | 'IDEMPOTENCY_KEY_REUSED'
  | 'RATE_LIMITED'
  | 'SERVICE_UNAVAILABLE'
  | 'INTERNAL';

export class AppError extends Error {
  /** True when this refusal is the stored answer to an earlier request with the same Idempotency-Key. */
  replayed = false;

  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = 'AppError';
  }
}

/** The API's error format (API.md): `details` is always there, `{}` when the code carries nothing. */
export function errorEnvelope(error: AppError, requestId: string | undefined) {
  return { error: { code: error.code, message: error.message, details: error.details ?? {}, requestId } };
}

export const notFound = (what: string) => new AppError('NOT_FOUND', `${what} not found`);
export const forbidden = (message = 'Your role does not allow this action') => new AppError('FORBIDDEN', message);
