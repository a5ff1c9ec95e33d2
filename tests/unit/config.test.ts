import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, envSchema, loadConfig } from '../../src/config';

const base = { DATABASE_URL: 'postgres://u:p@localhost:5432/db', JWT_SECRET: 'x'.repeat(32) };

function problemWith(env: Record<string, string>): string {
  try {
    loadConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  test('When only the required values are given, then defaults fill the rest', () => {
    const config = loadConfig(base);
    expect(config.PORT).toBe(3000);
    expect(config.SESSION_TTL_SECONDS).toBe(900);
    expect(config.CORS_ORIGINS).toEqual([]);
    expect(config.embeddedDatabase).toBe(false);
    expect(config.jwt.algorithm).toBe('HS256');
  });

  test.each([
    [{ PORT: 'abc' }, 'PORT'],
    [{ PORT: '70000' }, 'PORT'],
    [{ DATABASE_URL: 'mysql://x' }, 'DATABASE_URL'],
    [{ JWT_SECRET: 'short' }, 'JWT_SECRET'],
    [{ JWT_SECRET: '' }, 'JWT_SECRET'],
    [{ JWT_ALGORITHM: 'HS512' }, 'JWT_ALGORITHM'],
    [{ JWT_ALGORITHM: 'RS256' }, 'JWT_PUBLIC_KEY'],
    [{ JWT_ALGORITHM: 'RS256', JWT_PUBLIC_KEY: 'not a key' }, 'JWT_PUBLIC_KEY'],
    [{ CORS_ORIGINS: 'not a url' }, 'CORS_ORIGINS'],
    [{ SESSION_EXPIRY_POLICY: 'forgive' }, 'SESSION_EXPIRY_POLICY'],
    [{ SESSION_TTL_SECONDS: '1000', SESSION_MAX_TTL_SECONDS: '100' }, 'SESSION_TTL_SECONDS'],
    [{ BODY_LIMIT: 'huge' }, 'BODY_LIMIT'],
    [{ HTTP_HEADERS_TIMEOUT_MS: '50' }, 'HTTP_HEADERS_TIMEOUT_MS'],
    [{ HTTP_HEADERS_TIMEOUT_MS: '20000', HTTP_REQUEST_TIMEOUT_MS: '10000' }, 'HTTP_HEADERS_TIMEOUT_MS'],
  ])('When %p is set, then loading fails naming %s', (override, variable) => {
    const message = problemWith({ ...base, ...override });
    expect(message).toMatch(new RegExp(`^Invalid configuration: ${variable} `));
    expect(message.split('\n')).toHaveLength(1);
  });

  test.each([
    [{ PORT: 'abc' }, 'PORT must be an integer port number (1-65535, or 0 for any free port), got "abc"'],
    [{ PORT: '70000' }, 'PORT must be an integer port number (1-65535, or 0 for any free port), got "70000"'],
    [{ DATABASE_POOL_MAX: '2.5' }, 'DATABASE_POOL_MAX must be a whole number from 2 to 200, got "2.5"'],
    [{ LOG_LEVEL: 'verbose' }, 'LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent, got "verbose"'],
    [{ DATABASE_SSL: 'yes' }, 'DATABASE_SSL must be disable, require or verify-full ("true" is no longer accepted: say require or verify-full), got "yes"'],
    [{ CORS_ORIGINS: 'app.example.com' }, 'CORS_ORIGINS must be a comma-separated list of origins such as https://app.example.com, got "app.example.com"'],
    [{ SHUTDOWN_DELAY_MS: '20000' }, 'SHUTDOWN_DELAY_MS must be less than SHUTDOWN_GRACE_MS (10000), got 20000'],
    // Secrets and URLs that may carry a password are never repeated back.
    [{ DATABASE_URL: 'mysql://root:hunter2@db/x' }, 'DATABASE_URL must be a postgres:// or postgresql:// URL'],
    [{ JWT_SECRET: 'hunter2' }, 'JWT_SECRET must be at least 32 characters'],
  ])('When %p is set, then the message says what is wanted and what was given', (override, expected) => {
    expect(problemWith({ ...base, ...override })).toBe(`Invalid configuration: ${expected}`);
  });

  test('When any variable has a malformed value, then its message is a plain sentence, not a parser\'s', () => {
    const messages = Object.keys(envSchema.shape).flatMap((name) =>
      ['abc!', '-5', '1.5', '99999999'].flatMap((value) => {
        try {
          loadConfig({ ...base, [name]: value });
          return [];
        } catch (error) {
          return [(error as Error).message];
        }
      }),
    );

    expect(messages.length).toBeGreaterThan(80);
    const unclear = messages.filter((m) => !/^Invalid configuration: [A-Z_]+ must /.test(m) || /expected|received|Invalid input|NaN/.test(m.slice(22)));
    expect(unclear).toEqual([]);
  });

  test('When RS256 is chosen with an RSA public key, then it is accepted', () => {
    const { publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
    const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString().replace(/\n/g, '\\n');
    const config = loadConfig({ DATABASE_URL: base.DATABASE_URL, JWT_ALGORITHM: 'RS256', JWT_PUBLIC_KEY: pem });
    expect(config.jwt.key.asymmetricKeyType).toBe('rsa');
  });

  test('When a real database is configured without a secret, then loading fails', () => {
    expect(problemWith({ DATABASE_URL: base.DATABASE_URL })).toMatch(/^Invalid configuration: JWT_SECRET /);
  });

  test('When the embedded database is used without a secret, then one is generated and kept', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'acct-config-'));
    const env = { EMBEDDED_PG_DIR: path.join(dir, 'postgres') };
    const first = loadConfig(env);
    const second = loadConfig(env);
    expect(first.embeddedDatabase).toBe(true);
    expect(fs.existsSync(path.join(dir, 'jwt-secret'))).toBe(true);
    expect(first.jwt.key.export().equals(second.jwt.key.export())).toBe(true);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
