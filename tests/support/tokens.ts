import crypto from 'node:crypto';
import jwt from 'jsonwebtoken';
import type { Role } from '../../src/models';

/** The HS256 secret every test app is configured with. */
export const TEST_JWT_SECRET = 'test-secret-that-is-at-least-32-characters-long';

export interface TokenOptions {
  sub?: string;
  role?: Role | string;
  email?: string;
  username?: string;
  expiresIn?: number | string;
  secret?: string;
  extra?: Record<string, unknown>;
}

/** A valid token for the test app. `sub` defaults to a fresh unique user. */
export function tokenFor(options: TokenOptions = {}): string {
  const sub = options.sub ?? `user-${crypto.randomUUID()}`;
  return jwt.sign(
    { sub, role: options.role ?? 'user', email: options.email, username: options.username, ...options.extra },
    options.secret ?? TEST_JWT_SECRET,
    { algorithm: 'HS256', expiresIn: (options.expiresIn ?? '1h') as jwt.SignOptions['expiresIn'] },
  );
}

export const bearer = (token: string) => `Bearer ${token}`;

/** A user with a token: `auth` is ready for supertest's `.set('Authorization', ...)`. */
export function userWithRole(role: Role = 'user', sub = `${role}-${crypto.randomUUID()}`) {
  return { id: sub, role, auth: bearer(tokenFor({ sub, role })) };
}

export const hostileTokens = {
  expired: () => tokenFor({ expiresIn: -60 }),
  wrongSecret: () => tokenFor({ secret: 'another-secret-that-is-also-32-characters-long' }),
  withoutExp: () => jwt.sign({ sub: 'no-exp', role: 'user' }, TEST_JWT_SECRET, { algorithm: 'HS256' }),
  withoutSub: () => jwt.sign({ role: 'user' }, TEST_JWT_SECRET, { algorithm: 'HS256', expiresIn: '1h' }),
  unknownRole: () => tokenFor({ role: 'root' }),
  algNone: () => {
    const encode = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const now = Math.floor(Date.now() / 1000);
    return `${encode({ alg: 'none', typ: 'JWT' })}.${encode({ sub: 'mallory', role: 'admin', exp: now + 3600 })}.`;
  },
  tamperedPayload: () => {
    const [header, , signature] = tokenFor({ sub: 'mallory', role: 'user' }).split('.');
    const payload = Buffer.from(JSON.stringify({ sub: 'mallory', role: 'admin', exp: Math.floor(Date.now() / 1000) + 3600 })).toString('base64url');
    return `${header}.${payload}.${signature}`;
  },
  rs256: () => {
    const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
    return jwt.sign({ sub: 'rsa-user', role: 'admin' }, privateKey, { algorithm: 'RS256', expiresIn: '1h' });
  },
};
