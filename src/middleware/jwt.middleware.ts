import type { RequestHandler } from 'express';
import jwt from 'jsonwebtoken';
import type { Config } from '../config';
import { AppError, forbidden } from '../lib/errors';
import type { Role } from '../models';
import { idProblem, textProblem } from '../schemas/text';
import type { UserAccountService } from '../services/user-account.service';

const ROLES: readonly Role[] = ['user', 'supervisor', 'admin'];
const RANK: Record<Role, number> = { user: 0, supervisor: 1, admin: 2 };

const unauthenticated = (message: string) => new AppError('UNAUTHENTICATED', message);
// 1-255 characters, none of them a control character or an unpaired surrogate.
// eslint-disable-next-line no-control-regex
const NOT_PRINTABLE = /[\u0000-\u001f\u007f]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const isPrintableId = (value: unknown): value is string =>
  typeof value === 'string' && value.length >= 1 && value.length <= 255 && !NOT_PRINTABLE.test(value);
// email/username are informational: a claim that is too long or holds control characters is dropped, not stored.
const optionalClaim = (value: unknown) =>
  typeof value === 'string' && value.length <= 320 && textProblem(value) === null ? value : null;
/** Actor ids the service writes itself (sweepers, expiry): no token may claim them. */
export const isSystemActor = (sub: string) => /^system(:|$)/i.test(sub);

/**
 * Verifies the bearer token (algorithm pinned by config, `exp` required, issuer and audience checked
 * when configured) and mirrors the user into user_accounts. Any failure is a 401, never a 500.
 * `mirror: false` is for routes whose own statement mirrors the caller (RouteSpec.mirrorsUser).
 */
export function authenticateJWT(jwtConfig: Config['jwt'], users: UserAccountService, { mirror = true } = {}): RequestHandler {
  const verifyOptions: jwt.VerifyOptions = {
    algorithms: [jwtConfig.algorithm],
    issuer: jwtConfig.issuer,
    audience: jwtConfig.audience,
    clockTolerance: jwtConfig.clockToleranceSeconds,
  };
  return async (req, _res, next) => {
    const header = req.headers.authorization;
    const match = typeof header === 'string' ? /^Bearer ([A-Za-z0-9_\-.=]+)$/i.exec(header.trim()) : null;
    if (!match) return next(unauthenticated('Missing or malformed Authorization header; expected "Bearer <token>"'));

    let claims: jwt.JwtPayload;
    try {
      const decoded = jwt.verify(match[1], jwtConfig.key, verifyOptions);
      if (typeof decoded === 'string') throw new Error('payload is not an object');
      claims = decoded;
    } catch (error) {
      const reason = error instanceof jwt.TokenExpiredError ? 'Token has expired' : 'Token is not valid';
      return next(unauthenticated(reason));
    }
    if (typeof claims.exp !== 'number') return next(unauthenticated('Token has no expiry (exp)'));
    if (typeof claims.sub !== 'string' || idProblem(claims.sub) !== null) {
      return next(unauthenticated('Token has no valid subject (sub): it must be 1-255 printable characters'));
    }
    if (isSystemActor(claims.sub)) return next(unauthenticated('Token subject is in the reserved system namespace'));
    const role = claims.role ?? 'user';
    if (!ROLES.includes(role)) return next(unauthenticated('Token has an unknown role'));
    // The org claim is optional; when present it must be an id like any other (1-255 printable characters).
    const org: unknown = claims[jwtConfig.orgClaim];
    if (org !== undefined && org !== null && !isPrintableId(org)) return next(unauthenticated('Token has an invalid org claim'));

    req.auth = {
      userId: claims.sub,
      role,
      email: optionalClaim(claims.email),
      username: optionalClaim(claims.username),
      orgId: typeof org === 'string' ? org : null,
    };
    if (!mirror) return next();
    try {
      await users.findOrCreateUser(req.auth);
      next();
    } catch (error) {
      next(error);
    }
  };
}

function requireRole(minimum: Role): RequestHandler {
  return (req, _res, next) => {
    if (!req.auth) return next(unauthenticated('Authentication required'));
    if (RANK[req.auth.role] < RANK[minimum]) return next(forbidden(`This action needs the ${minimum} role`));
    next();
  };
}

/** Any signed-in caller (the user role is the lowest). */
export const requireAuthenticated = requireRole('user');
/** Supervisor or admin: allocations and other users' data. */
export const requireSupervisor = requireRole('supervisor');
/** Admin only: prices, system stats, all sessions, reconcile. */
export const requireAdmin = requireRole('admin');

/** True when the caller may act on other users' data (supervisor or admin). */
export const canActForOthers = (role: Role) => RANK[role] >= RANK.supervisor;
