import crypto from 'node:crypto';
import jwt from 'jsonwebtoken';
import { TEST_JWT_SECRET } from '../../support/tokens';

const b64 = (value: object | string | Buffer) =>
  Buffer.from(typeof value === 'string' || Buffer.isBuffer(value) ? value : JSON.stringify(value)).toString('base64url');

/** A compact JWS built by hand, so a test can sign anything with anything (including what libraries refuse). */
export function handMadeToken(header: object, payload: object, sign: (input: string) => Buffer | string): string {
  const input = `${b64(header)}.${b64(payload)}`;
  const signature = sign(input);
  return `${input}.${typeof signature === 'string' ? signature : signature.toString('base64url')}`;
}

export const hmac = (algorithm: 'sha256' | 'sha384' | 'sha512', key: string | Buffer) => (input: string) =>
  crypto.createHmac(algorithm, key).update(input).digest();

export const nowSeconds = () => Math.floor(Date.now() / 1000);

/** One hour unless the claims carry their own `exp`. */
const expiry = (claims: Record<string, unknown>): jwt.SignOptions => ('exp' in claims ? {} : { expiresIn: '1h' });

/** An issuer setup the way a deployment pins it: algorithm, key, issuer and audience. */
export interface Issuer {
  iss: string;
  aud: string;
  /** A valid token for this issuer (claims override the defaults). */
  sign(claims: Record<string, unknown>, options?: jwt.SignOptions): string;
}

export function hs256Issuer(iss: string, aud: string, secret = TEST_JWT_SECRET): Issuer {
  return {
    iss,
    aud,
    sign: (claims, options = {}) =>
      jwt.sign({ role: 'user', iss, aud, ...claims }, secret, { algorithm: 'HS256', ...expiry(claims), ...options }),
  };
}

export function rs256Issuer(iss: string, aud: string) {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const publicPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  return {
    iss,
    aud,
    privateKey,
    publicPem,
    sign: (claims: Record<string, unknown>, options: jwt.SignOptions = {}) =>
      jwt.sign({ role: 'user', iss, aud, ...claims }, privateKey, { algorithm: 'RS256', ...expiry(claims), ...options }),
  };
}
