import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { z } from 'zod';

/**
 * Every setting the service reads, validated once at boot. A missing or malformed value stops the
 * process with one line naming the variable (see loadConfig). `.env.example` documents each one.
 */
const bool = z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1');
const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const optionalString = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? undefined : v.trim()));

export const envSchema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  HOST: z.string().default('0.0.0.0'),
  PORT: int(0, 65535).default(3000),
  DATABASE_URL: optionalString.pipe(z.url({ protocol: /^postgres(ql)?$/ }).optional()),
  DATABASE_POOL_MAX: int(1, 200).default(10),
  // disable | require (encrypted, unverified) | verify-full (certificate and host name checked). The old
  // boolean is refused for "true" (it meant an unverified connection) and read as disable for "false".
  DATABASE_SSL: z
    .enum(['disable', 'require', 'verify-full', 'false', '0'], {
      message: 'must be disable, require or verify-full ("true" is no longer accepted: say require or verify-full)',
    })
    .default('disable')
    .transform((v) => (v === 'false' || v === '0' ? 'disable' : v) as 'disable' | 'require' | 'verify-full'),
  DATABASE_SSL_CA: optionalString,
  DB_STATEMENT_TIMEOUT_MS: int(100, 600_000).default(10_000),
  DB_LOCK_TIMEOUT_MS: int(10, 600_000).default(3_000),
  DB_ACQUIRE_TIMEOUT_MS: int(100, 600_000).default(5_000),
  EMBEDDED_PG_DIR: z.string().default('.data/postgres'),
  EMBEDDED_PG_PORT: int(0, 65535).default(0),
  JWT_ALGORITHM: z.enum(['HS256', 'RS256']).default('HS256'),
  JWT_SECRET: optionalString.pipe(z.string().min(32, 'must be at least 32 characters').optional()),
  JWT_PUBLIC_KEY: optionalString,
  JWT_ISSUER: optionalString,
  JWT_AUDIENCE: optionalString,
  // Seconds of clock skew allowed between the token issuer and this service when checking exp/nbf.
  JWT_CLOCK_TOLERANCE_SECONDS: int(0, 300).default(5),
  // Debt bound (API.md, Usage): while a user's unpaid credits are above this, their initialize and own usage
  // records are refused with 402 UNPAID_LIMIT. Unset: unlimited.
  UNPAID_LIMIT_CREDITS: optionalString.pipe(
    z
      .string()
      .regex(/^\d{1,13}(\.\d{1,6})?$/, 'must be credits with at most 6 decimals (at most 9,000,000,000,000)')
      .transform((v) => {
        const [whole, frac = ''] = v.split('.');
        return BigInt(whole) * 1_000_000n + BigInt(frac.padEnd(6, '0'));
      })
      .refine((micro) => micro <= 9_000_000_000_000_000_000n, 'must be at most 9,000,000,000,000')
      .optional(),
  ),
  SESSION_TTL_SECONDS: int(10, 86_400).default(900),
  SESSION_MAX_TTL_SECONDS: int(10, 7 * 86_400).default(86_400),
  SESSION_EXPIRY_POLICY: z.enum(['release', 'charge_estimated_input', 'charge_estimate']).default('charge_estimated_input'),
  SWEEPER_INTERVAL_MS: int(0, 3_600_000).default(5_000),
  CORS_ORIGINS: z
    .string()
    .default('')
    .transform((v) => v.split(',').map((s) => s.trim()).filter(Boolean))
    .pipe(z.array(z.url())),
  BODY_LIMIT: z.string().regex(/^\d+(b|kb|mb)$/i, 'must look like 100kb').default('100kb'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  SHUTDOWN_GRACE_MS: int(0, 600_000).default(10_000),
  // Slow or stalled clients: how long a client may take to send its headers / its whole request, and how
  // long an idle keep-alive connection stays open. Without them a few slow sockets can pin the process.
  HTTP_HEADERS_TIMEOUT_MS: int(100, 600_000).default(10_000),
  HTTP_REQUEST_TIMEOUT_MS: int(100, 600_000).default(30_000),
  HTTP_KEEP_ALIVE_TIMEOUT_MS: int(100, 600_000).default(5_000),
  IDEMPOTENCY_KEY_TTL_HOURS: int(24, 24 * 365).default(24),
  USER_CACHE_TTL_MS: int(0, 3_600_000).default(30_000),
  PRICE_CACHE_TTL_MS: int(0, 3_600_000).default(5_000),
  REDIS_URL: optionalString.pipe(z.url({ protocol: /^rediss?$/ }).optional()),
  // --- Operations (issue #8): rate limits, metrics, proxies, shutdown ---
  RATE_LIMIT_ENABLED: bool.default(true),
  RATE_LIMIT_PER_USER_PER_MINUTE: int(1, 10_000_000).default(600),
  RATE_LIMIT_PER_IP_PER_MINUTE: int(1, 10_000_000).default(6_000),
  TRUST_PROXY: z
    .string()
    .default('loopback')
    .transform((v): boolean | number | string => (v === 'true' ? true : v === 'false' ? false : /^\d+$/.test(v) ? Number(v) : v)),
  METRICS_ENABLED: bool.default(true),
  METRICS_TOKEN: optionalString.pipe(z.string().min(16, 'must be at least 16 characters').optional()),
  // In production /metrics needs METRICS_TOKEN unless this says the endpoint is meant to be public.
  METRICS_PUBLIC: bool.default(false),
  SHUTDOWN_DELAY_MS: int(0, 600_000).default(0),
});

export type Env = z.infer<typeof envSchema>;

export interface Config extends Env {
  /** True when no DATABASE_URL was given and the service runs its own PostgreSQL. */
  embeddedDatabase: boolean;
  jwt: { algorithm: 'HS256' | 'RS256'; key: crypto.KeyObject; issuer?: string; audience?: string; clockToleranceSeconds: number };
}

export class ConfigError extends Error {
  constructor(readonly variable: string, problem: string) {
    super(`Invalid configuration: ${variable} ${problem}`);
    this.name = 'ConfigError';
  }
}

/** Where a local, generated JWT secret lives when none is configured (embedded mode only). */
export function localSecretPath(env: NodeJS.ProcessEnv = process.env): string {
  return path.resolve(path.dirname(path.resolve(env.EMBEDDED_PG_DIR || '.data/postgres')), 'jwt-secret');
}

function readOrCreateLocalSecret(env: NodeJS.ProcessEnv): string {
  const file = localSecretPath(env);
  if (fs.existsSync(file)) return fs.readFileSync(file, 'utf8').trim();
  const secret = crypto.randomBytes(48).toString('base64url');
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, secret + '\n', { mode: 0o600 });
  return secret;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ConfigError(String(issue.path[0] ?? 'environment'), issue.message.replace(/^Invalid input: /, ''));
  }
  const values = parsed.data;
  const embeddedDatabase = values.DATABASE_URL === undefined;

  let key: crypto.KeyObject;
  if (values.JWT_ALGORITHM === 'RS256') {
    if (!values.JWT_PUBLIC_KEY) throw new ConfigError('JWT_PUBLIC_KEY', 'is required when JWT_ALGORITHM=RS256');
    try {
      key = crypto.createPublicKey(values.JWT_PUBLIC_KEY.replace(/\\n/g, '\n'));
    } catch {
      throw new ConfigError('JWT_PUBLIC_KEY', 'is not a PEM public key');
    }
    if (key.asymmetricKeyType !== 'rsa') throw new ConfigError('JWT_PUBLIC_KEY', 'must be an RSA public key');
  } else {
    let secret = values.JWT_SECRET;
    if (!secret) {
      // Only a local, embedded-database run may invent its own secret; anything else must be told.
      if (!embeddedDatabase || values.NODE_ENV === 'production') {
        throw new ConfigError('JWT_SECRET', 'is required when JWT_ALGORITHM=HS256 (at least 32 characters)');
      }
      secret = readOrCreateLocalSecret(env);
    }
    // A KeyObject verifies several times faster than a string secret in jsonwebtoken.
    key = crypto.createSecretKey(Buffer.from(secret, 'utf8'));
  }

  if (values.SHUTDOWN_DELAY_MS >= values.SHUTDOWN_GRACE_MS && values.SHUTDOWN_DELAY_MS > 0) {
    throw new ConfigError('SHUTDOWN_DELAY_MS', 'must be less than SHUTDOWN_GRACE_MS');
  }
  if (values.SESSION_TTL_SECONDS > values.SESSION_MAX_TTL_SECONDS) {
    throw new ConfigError('SESSION_TTL_SECONDS', 'must not exceed SESSION_MAX_TTL_SECONDS');
  }

  if (values.NODE_ENV === 'production' && values.METRICS_ENABLED && !values.METRICS_TOKEN && !values.METRICS_PUBLIC) {
    // A public /metrics tells anyone the traffic and money volumes, and each scrape costs database reads.
    throw new ConfigError('METRICS_TOKEN', 'is required in production (or set METRICS_PUBLIC=true, or METRICS_ENABLED=false)');
  }

  if (values.DATABASE_SSL_CA && !values.DATABASE_SSL_CA.includes('-----BEGIN') && !fs.existsSync(values.DATABASE_SSL_CA)) {
    throw new ConfigError('DATABASE_SSL_CA', 'is neither a readable PEM file nor PEM text');
  }

  if (values.HTTP_HEADERS_TIMEOUT_MS > values.HTTP_REQUEST_TIMEOUT_MS) {
    throw new ConfigError('HTTP_HEADERS_TIMEOUT_MS', 'must not exceed HTTP_REQUEST_TIMEOUT_MS');
  }

  return {
    ...values,
    embeddedDatabase,
    jwt: {
      algorithm: values.JWT_ALGORITHM,
      key,
      issuer: values.JWT_ISSUER,
      audience: values.JWT_AUDIENCE,
      clockToleranceSeconds: values.JWT_CLOCK_TOLERANCE_SECONDS,
    },
  };
}
