import type { Request, RequestHandler } from 'express';
import { rateLimit, type Store } from 'express-rate-limit';
import { RedisStore } from 'rate-limit-redis';
import { createClient } from 'redis';
import type { Config } from '../config';
import { AppError } from '../lib/errors';
import type { Logger } from '../lib/logger';
import type { Metrics } from '../lib/metrics';

export interface RateLimiters {
  /** Per client IP, before authentication (also slows down floods of bad tokens). */
  perIp: RequestHandler;
  /** Per authenticated user (the token's `sub`), after authentication. */
  perUser: RequestHandler;
  close(): Promise<void>;
}

const WINDOW_MS = 60_000;
/** How long a request waits for Redis before it is let through unlimited (the store is down). */
const REDIS_TIMEOUT_MS = 500;

const passThrough: RequestHandler = (_req, _res, next) => next();

/**
 * A RedisStore that never holds a request hostage: each increment gives up after REDIS_TIMEOUT_MS (the
 * limiter then lets the request through and logs), and a script load that failed while Redis was
 * unreachable is tried again on the next request instead of failing forever.
 */
class ResilientRedisStore extends RedisStore {
  async increment(key: string) {
    this.incrementScriptSha = this.incrementScriptSha.catch(() => this.loadIncrementScript());
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`Redis did not answer within ${REDIS_TIMEOUT_MS} ms`)), REDIS_TIMEOUT_MS);
    });
    try {
      return await Promise.race([super.increment(key), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }
}

/**
 * Per-IP and per-user limits over a one-minute window (express-rate-limit). With REDIS_URL the counts
 * live in Redis, so every instance shares one limit; otherwise each process counts on its own.
 * Refusals are 429 RATE_LIMITED in the API's error format with Retry-After (seconds).
 * If Redis fails, requests pass unlimited rather than fail: accounting availability comes first.
 */
export function createRateLimiters(config: Config, logger: Logger, metrics: Metrics): RateLimiters {
  if (!config.RATE_LIMIT_ENABLED) return { perIp: passThrough, perUser: passThrough, close: async () => undefined };

  let redis: ReturnType<typeof createClient> | undefined;
  if (config.REDIS_URL) {
    redis = createClient({
      url: config.REDIS_URL,
      // Keep trying in the background; meanwhile requests pass (see ResilientRedisStore).
      socket: { connectTimeout: 2_000, reconnectStrategy: (retries) => Math.min(100 * 2 ** retries, 5_000) },
      commandsQueueMaxLength: 10_000,
    });
    let lastError = 0;
    redis.on('error', (error: Error) => {
      // One line per 10 s at most while Redis is down.
      if (Date.now() - lastError > 10_000) logger.warn({ err: error }, 'rate limit store (Redis) unavailable');
      lastError = Date.now();
    });
    redis.connect().catch(() => undefined);
  }
  const client = redis;
  const stores: Store[] = [];
  const storeFor = (name: string): Store | undefined => {
    if (!client) return undefined;
    const store = new ResilientRedisStore({
      prefix: `acct:rl:${name}:`,
      sendCommand: (...args: string[]) => client.sendCommand(args) as never,
    });
    stores.push(store);
    return store;
  };

  const limiterLogger = {
    warn: (message: unknown) => logger.warn({ detail: String(message) }, 'rate limiter warning'),
    error: (error: unknown, message?: string) => logger.warn({ err: error }, message ?? 'rate limiter error'),
  };

  const make = (name: 'ip' | 'user', limit: number, keyGenerator?: (req: Request) => string): RequestHandler =>
    rateLimit({
      windowMs: WINDOW_MS,
      limit,
      standardHeaders: 'draft-7',
      legacyHeaders: false,
      store: storeFor(name),
      passOnStoreError: true,
      logger: limiterLogger,
      ...(keyGenerator ? { keyGenerator } : {}),
      skip: (req) => req.method === 'OPTIONS',
      handler: (req, res, next) => {
        metrics.rateLimited.inc({ limiter: name });
        const retryAfterSeconds = Number(res.getHeader('Retry-After')) || Math.ceil(WINDOW_MS / 1000);
        next(
          new AppError('RATE_LIMITED', `Too many requests ${name === 'ip' ? 'from this address' : 'for this user'}; retry after ${retryAfterSeconds} s`, {
            limit,
            windowSeconds: WINDOW_MS / 1000,
            retryAfterSeconds,
          }),
        );
      },
    });

  return {
    perIp: make('ip', config.RATE_LIMIT_PER_IP_PER_MINUTE),
    perUser: make('user', config.RATE_LIMIT_PER_USER_PER_MINUTE, (req) => `u:${req.auth!.userId}`),
    async close() {
      if (!client) return;
      // close() waits for pending replies, which never come while Redis is unreachable; destroy() also
      // cancels a pending reconnect (it throws when the client is already closed).
      if (client.isReady) await client.close().catch(() => undefined);
      try {
        client.destroy();
      } catch {
        // already closed
      }
    },
  };
}
