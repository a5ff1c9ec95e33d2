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
/** An id claim (the org): the same rules as every id of the API (src/schemas/text.ts idProblem). */
const isPrintableId = (value: unknown): value is string => typeof value === 'string' && idProblem(value) === null;
// email/username are informational: a claim that is too long or holds control characters is dropped, not stored.
const optionalClaim = (value: unknown) =>
  typeof value === 'string' && value.length <= 320 && textProblem(value) === null ? value : null;
/** The caller as the request carries it (req.auth). */
type CallerAuth = NonNullable<Express.Request['auth']>;

/** How many verified tokens each key configuration remembers; when full, the cache starts over. */
export const MAX_CACHED_TOKENS = 20_000;

/** A token that passed verification and the claims checks: the caller it names, and until when it may be used. */
interface VerifiedToken {
  auth: CallerAuth;
  /** jsonwebtoken refuses a token once floor(now / 1000) >= exp + clockTolerance; this is exp + clockTolerance. */
  usableUntil: number;
}

/**
 * Verified tokens by their exact string (header, payload and signature), per JWT configuration (so per key,
 * algorithm, issuer, audience and tolerance). A token is immutable and the service checks nothing per
 * request beyond its signature, claims and expiry, so a repeat caller's token needs neither the HMAC nor the
 * JSON parsing again until it expires; any other string — a different signature included — is verified as
 * before, and failures are never cached.
 */
const verifiedTokens = new WeakMap<Config['jwt'], Map<string, VerifiedToken>>();

function tokenCacheFor(jwtConfig: Config['jwt']): Map<string, VerifiedToken> {
  let cache = verifiedTokens.get(jwtConfig);
  if (!cache) verifiedTokens.set(jwtConfig, (cache = new Map()));
  return cache;
}

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
  /** Verifies the token and checks its claims: the caller, or the 401 to answer. */
  const verifyToken = (token: string): VerifiedToken | AppError => {
    let claims: jwt.JwtPayload;
    try {
      const decoded = jwt.verify(token, jwtConfig.key, verifyOptions);
      if (typeof decoded === 'string') throw new Error('payload is not an object');
      claims = decoded;
    } catch (error) {
      return unauthenticated(error instanceof jwt.TokenExpiredError ? 'Token has expired' : 'Token is not valid');
    }
    if (typeof claims.exp !== 'number') return unauthenticated('Token has no expiry (exp)');
    if (typeof claims.sub !== 'string' || idProblem(claims.sub) !== null) {
      return unauthenticated('Token has no valid subject (sub): it must be 1-255 printable characters');
    }
    if (isSystemActor(claims.sub)) return unauthenticated('Token subject is in the reserved system namespace');
    const role = claims.role ?? 'user';
    if (!ROLES.includes(role)) return unauthenticated('Token has an unknown role');
    // The org claim is optional; when present it must be an id like any other (1-255 printable characters).
    const org: unknown = claims[jwtConfig.orgClaim];
    if (org !== undefined && org !== null && !isPrintableId(org)) return unauthenticated('Token has an invalid org claim');
    const auth: CallerAuth = Object.freeze({
      userId: claims.sub,
      role,
      email: optionalClaim(claims.email),
      username: optionalClaim(claims.username),
      orgId: typeof org === 'string' ? org : null,
    });
    return { auth, usableUntil: claims.exp + (jwtConfig.clockToleranceSeconds || 0) };
  };
  const cache = tokenCacheFor(jwtConfig);
  // Not an async function: a cached caller, or one on a route that mirrors it itself (initialize, balance),
  // passes straight on, without a promise for the layer to watch.
  return (req, _res, next) => {
    const header = req.headers.authorization;
    const match = typeof header === 'string' ? /^Bearer ([A-Za-z0-9_\-.=]+)$/i.exec(header.trim()) : null;
    if (!match) return next(unauthenticated('Missing or malformed Authorization header; expected "Bearer <token>"'));
    const token = match[1];
    let auth: CallerAuth;
    const cached = cache.get(token);
    if (cached !== undefined && Math.floor(Date.now() / 1000) < cached.usableUntil) {
      auth = cached.auth;
    } else {
      // Not seen, or expired since (then jwt.verify below says so, as it always did).
      if (cached !== undefined) cache.delete(token);
      const verified = verifyToken(token);
      if (verified instanceof AppError) return next(verified);
      if (cache.size >= MAX_CACHED_TOKENS) cache.clear();
      cache.set(token, verified);
      auth = verified.auth;
    }
    req.auth = auth;
    if (!mirror || users.isSynced(auth)) return next();
    // catch after then: an error thrown further down the chain, synchronously inside next(), becomes
    // next(error) as in an async middleware, not an unhandled rejection.
    users.findOrCreateUser(auth).then(() => next()).catch(next);
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
