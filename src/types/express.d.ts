import type { Role } from '../models';

declare global {
  namespace Express {
    interface Request {
      /** Set by the request-id middleware; echoed as X-Request-Id and in every error body. */
      id: string;
      /** Set by authenticateJWT from the verified token. */
      auth?: { userId: string; role: Role; email: string | null; username: string | null; orgId: string | null };
      /** Set by validate(): the parsed, typed input. */
      valid: { body: unknown; query: Record<string, unknown>; params: Record<string, unknown> };
      /** Set on idempotent routes: the caller's Idempotency-Key and a hash of the request. */
      idempotency?: { key: string; requestHash: string };
    }
  }
}
export {};
