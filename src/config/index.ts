import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { z } from 'zod';
import { parseCredits } from '../lib/money';

/**
 * Every setting the service reads, validated once at boot. A missing or malformed value stops the
 * process with one line naming the variable (see loadConfig). `.env.example` documents each one.
 */
// Every rule carries its own sentence, so a bad value reads "PORT must be ..., got "abc"" rather than zod's
// "expected number, received NaN" (loadConfig adds the value, except for secrets).
const bool = z.enum(['true', 'false', '1', '0'], { error: 'must be true or false (or 1 or 0)' }).transform((v) => v === 'true' || v === '1');
const int = (min: number, max: number, what = `a whole number from ${min} to ${max}`) => {
  const error = `must be ${what}`;
  return z.coerce.number({ error }).int({ error }).min(min, { error }).max(max, { error });
};
const port = () => int(0, 65535, 'an integer port number (1-65535, or 0 for any free port)');
const oneOf = <const T extends readonly [string, ...string[]]>(values: T) => z.enum(values, { error: `must be one of ${values.join(', ')}` });
const optionalString = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? undefined : v.trim()));

export const envSchema = z.object({
  NODE_ENV: oneOf(['development', 'production', 'test']).default('development'),
  HOST: z.string().default('0.0.0.0'),
  PORT: port().default(3000),
  DATABASE_URL: optionalString.pipe(z.url({ protocol: /^postgres(ql)?$/, error: 'must be a postgres:// or postgresql:// URL' }).optional()),
  // At least 2: migrations at boot hold one connection for their lock while another applies them.
  DATABASE_POOL_MAX: int(2, 200).default(10),
  // disable | require (encrypted, unverified) | verify-full (certificate and host name checked). The old
  // boolean is refused for "true" (it meant an unverified connection) and read as disable for "false".
  DATABASE_SSL: z
    .enum(['disable', 'require', 'verify-full', 'false', '0'], {
      message: 'must be disable, require or verify-full ("true" is no longer accepted: say require or verify-full)',
    })
    .default('disable')
    .transform((v) => (v === 'false' || v === '0' ? 'disable' : v) as 'disable' | 'require' | 'verify-full'),
  DATABASE_SSL_CA: optionalString,
  // false behind PgBouncer in transaction pooling mode: no named prepared statements, no session settings at connect.
  DATABASE_PREPARED_STATEMENTS: bool.default(true),
  // A streaming replica for statistics, lists and exports, used while its replay lag is under REPLICA_MAX_LAG_MS.
  DATABASE_REPLICA_URL: optionalString.pipe(z.url({ protocol: /^postgres(ql)?$/, error: 'must be a postgres:// or postgresql:// URL' }).optional()),
  REPLICA_MAX_LAG_MS: int(0, 3_600_000).default(5_000),
  DB_STATEMENT_TIMEOUT_MS: int(100, 600_000).default(10_000),
  DB_LOCK_TIMEOUT_MS: int(10, 600_000).default(3_000),
  // GET /api/admin/reconcile: each statement of a run may take this long (a full run reads the whole ledger).
  RECONCILE_STATEMENT_TIMEOUT_MS: int(100, 3_600_000).default(600_000),
  DB_ACQUIRE_TIMEOUT_MS: int(100, 600_000).default(5_000),
  EMBEDDED_PG_DIR: z.string().default('.data/postgres'),
  EMBEDDED_PG_PORT: port().default(0),
  JWT_ALGORITHM: oneOf(['HS256', 'RS256']).default('HS256'),
  JWT_SECRET: optionalString.pipe(z.string().min(32, 'must be at least 32 characters').optional()),
  JWT_PUBLIC_KEY: optionalString,
  JWT_ISSUER: optionalString,
  JWT_AUDIENCE: optionalString,
  // The claim naming the user's organization (budgets, docs/budgets.md); when a token carries it, it wins.
  JWT_ORG_CLAIM: z.string().trim().min(1).max(100).default('org'),
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
  SESSION_EXPIRY_POLICY: oneOf(['release', 'charge_estimated_input', 'charge_estimate']).default('charge_estimated_input'),
  SWEEPER_INTERVAL_MS: int(0, 3_600_000).default(5_000),
  // Debt settlement (issue 16): new credits (grants, positive adjustments, schedules) pay unpaid usage first.
  SETTLE_UNPAID_ON_GRANT: bool.default(true),
  CORS_ORIGINS: z
    .string()
    .default('')
    .transform((v) => v.split(',').map((s) => s.trim()).filter(Boolean))
    .pipe(z.array(z.url({ error: 'must be a comma-separated list of origins such as https://app.example.com' }))),
  BODY_LIMIT: z.string().regex(/^\d+(b|kb|mb)$/i, 'must be a size such as 100kb or 1mb').default('100kb'),
  LOG_LEVEL: oneOf(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  SHUTDOWN_GRACE_MS: int(0, 600_000).default(10_000),
  // Slow or stalled clients: how long a client may take to send its headers / its whole request, and how
  // long an idle keep-alive connection stays open. Without them a few slow sockets can pin the process.
  HTTP_HEADERS_TIMEOUT_MS: int(100, 600_000).default(10_000),
  HTTP_REQUEST_TIMEOUT_MS: int(100, 600_000).default(30_000),
  HTTP_KEEP_ALIVE_TIMEOUT_MS: int(100, 600_000).default(5_000),
  IDEMPOTENCY_KEY_TTL_HOURS: int(24, 24 * 365).default(24),
  USER_CACHE_TTL_MS: int(0, 3_600_000).default(600_000),
  PRICE_CACHE_TTL_MS: int(0, 3_600_000).default(5_000),
  REDIS_URL: optionalString.pipe(z.url({ protocol: /^rediss?$/, error: 'must be a redis:// or rediss:// URL' }).optional()),
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
  // Worker processes (node:cluster) sharing the port; 1 runs the service in this process.
  WEB_CONCURRENCY: int(1, 64).default(1),
  // --- Events and webhooks (issue 15) ---
  LOW_BALANCE_THRESHOLDS: z.string().default(''),
  EXPIRING_NOTICE_DAYS: int(1, 365).default(7),
  EVENT_RETENTION_DAYS: int(1, 3650).default(30),
  WEBHOOK_SECRET_KEY: optionalString.pipe(z.string().min(32, 'must be at least 32 characters').optional()),
  WEBHOOK_ALLOW_PRIVATE: bool.default(false),
  WEBHOOK_TIMEOUT_MS: int(100, 60_000).default(10_000),
  WEBHOOK_RETRY_BASE_MS: int(10, 3_600_000).default(5_000),
  WEBHOOK_RETRY_HOURS: z.coerce
    .number({ error: 'must be a number of hours from 0 to 720' })
    .min(0, { error: 'must be a number of hours from 0 to 720' })
    .max(720, { error: 'must be a number of hours from 0 to 720' })
    .default(24),
  WEBHOOK_ENDPOINT_CONCURRENCY: int(1, 100).default(4),
  WEBHOOK_DISABLE_AFTER_FAILURES: int(0, 1_000_000).default(200),
  WEBHOOK_DISPATCH_INTERVAL_MS: int(0, 3_600_000).default(1_000),
});

const SECRET_VARIABLES = new Set(['DATABASE_URL', 'DATABASE_REPLICA_URL', 'REDIS_URL', 'JWT_SECRET', 'JWT_PUBLIC_KEY', 'METRICS_TOKEN']);

export type Env = z.infer<typeof envSchema>;

export interface Config extends Env {
  /** True when no DATABASE_URL was given and the service runs its own PostgreSQL. */
  embeddedDatabase: boolean;
  jwt: {
    algorithm: 'HS256' | 'RS256';
    key: crypto.KeyObject;
    issuer?: string;
    audience?: string;
    orgClaim: string;
    clockToleranceSeconds: number;
  };
  /** LOW_BALANCE_THRESHOLDS in micro-credits, ascending, without duplicates. */
  lowBalanceThresholds: bigint[];
  /** 32-byte AES key that encrypts webhook signing secrets at rest (from WEBHOOK_SECRET_KEY or the JWT secret). */
  webhookSecretKey?: Buffer;
}

export class ConfigError extends Error {
  constructor(readonly variable: string, problem: string) {
    super(`Invalid configuration: ${variable} ${problem}`);
    this.name = 'ConfigError';
  }
}

/**
 * Where a local, generated JWT secret lives when none is configured (embedded mode only): `jwt-secret` in
 * the folder that holds EMBEDDED_PG_DIR (`.data/jwt-secret` by default; initdb needs the data folder itself empty).
 */
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
    const variable = String(issue.path[0] ?? 'environment');
    const value = env[variable];
    // Secrets and URLs (which may carry a password) are never echoed.
    const shown = value === undefined || SECRET_VARIABLES.has(variable) ? '' : `, got ${JSON.stringify(value.length > 60 ? value.slice(0, 60) + '…' : value)}`;
    throw new ConfigError(variable, issue.message.replace(/^Invalid input: /, '') + shown);
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

  // Webhook secrets are encrypted with a key derived (HKDF) from WEBHOOK_SECRET_KEY, else from the HS256
  // JWT secret. An RS256 deployment has no shared secret to fall back on: without WEBHOOK_SECRET_KEY it runs,
  // and creating a webhook is refused with a message naming the variable (src/services/webhook.service.ts).
  let keyMaterial = values.WEBHOOK_SECRET_KEY;
  if (!keyMaterial && values.JWT_ALGORITHM === 'HS256') keyMaterial = key.export().toString('utf8');
  const webhookSecretKey = keyMaterial
    ? Buffer.from(crypto.hkdfSync('sha256', keyMaterial, 'accounting-service', 'webhook-secrets', 32))
    : undefined;

  const lowBalanceThresholds = parseThresholds(values.LOW_BALANCE_THRESHOLDS);
  if (values.EVENT_RETENTION_DAYS < values.EXPIRING_NOTICE_DAYS) {
    // A pruned credits.expiring event would let the same lot be announced again.
    throw new ConfigError('EVENT_RETENTION_DAYS', 'must be at least EXPIRING_NOTICE_DAYS');
  }

  if (values.SHUTDOWN_DELAY_MS >= values.SHUTDOWN_GRACE_MS && values.SHUTDOWN_DELAY_MS > 0) {
    throw new ConfigError('SHUTDOWN_DELAY_MS', `must be less than SHUTDOWN_GRACE_MS (${values.SHUTDOWN_GRACE_MS}), got ${values.SHUTDOWN_DELAY_MS}`);
  }
  if (values.SESSION_TTL_SECONDS > values.SESSION_MAX_TTL_SECONDS) {
    throw new ConfigError('SESSION_TTL_SECONDS', `must not exceed SESSION_MAX_TTL_SECONDS (${values.SESSION_MAX_TTL_SECONDS}), got ${values.SESSION_TTL_SECONDS}`);
  }

  if (values.WEB_CONCURRENCY > 1 && embeddedDatabase) {
    throw new ConfigError('WEB_CONCURRENCY', 'above 1 needs DATABASE_URL (workers cannot share an embedded PostgreSQL)');
  }

  if (values.NODE_ENV === 'production' && values.METRICS_ENABLED && !values.METRICS_TOKEN && !values.METRICS_PUBLIC) {
    // A public /metrics tells anyone the traffic and money volumes, and each scrape costs database reads.
    throw new ConfigError('METRICS_TOKEN', 'is required in production (or set METRICS_PUBLIC=true, or METRICS_ENABLED=false)');
  }

  if (values.DATABASE_SSL_CA && !values.DATABASE_SSL_CA.includes('-----BEGIN') && !fs.existsSync(values.DATABASE_SSL_CA)) {
    throw new ConfigError('DATABASE_SSL_CA', 'must be a readable PEM file or PEM text');
  }

  if (values.HTTP_HEADERS_TIMEOUT_MS > values.HTTP_REQUEST_TIMEOUT_MS) {
    throw new ConfigError('HTTP_HEADERS_TIMEOUT_MS', `must not exceed HTTP_REQUEST_TIMEOUT_MS (${values.HTTP_REQUEST_TIMEOUT_MS}), got ${values.HTTP_HEADERS_TIMEOUT_MS}`);
  }

  return {
    ...values,
    embeddedDatabase,
    jwt: {
      algorithm: values.JWT_ALGORITHM,
      key,
      issuer: values.JWT_ISSUER,
      audience: values.JWT_AUDIENCE,
      orgClaim: values.JWT_ORG_CLAIM,
      clockToleranceSeconds: values.JWT_CLOCK_TOLERANCE_SECONDS,
    },
    lowBalanceThresholds,
    webhookSecretKey,
  };
}

/** "10, 5,1.5" → micro-credits [1500000n, 5000000n, 10000000n]; each a positive amount of credits. */
function parseThresholds(text: string): bigint[] {
  const values = new Set<bigint>();
  for (const part of text.split(',').map((p) => p.trim()).filter(Boolean)) {
    const parsed = parseCredits(part);
    if (!parsed.ok || parsed.value <= 0n) {
      throw new ConfigError('LOW_BALANCE_THRESHOLDS', `must be comma-separated positive credits ("${part}" is not)`);
    }
    values.add(parsed.value);
  }
  return [...values].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}
