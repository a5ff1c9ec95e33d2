import type { Config } from '../config';
import type { Database } from '../db/database';
import { Metrics } from '../lib/metrics';
import { CreditService } from './credit.service';
import { IdempotencyService } from './idempotency.service';
import { PriceService } from './price.service';
import { StreamingSessionService } from './streaming-session.service';
import { UsageService } from './usage.service';
import { UserAccountService } from './user-account.service';

export interface Services {
  users: UserAccountService;
  idempotency: IdempotencyService;
  prices: PriceService;
  credits: CreditService;
  sessions: StreamingSessionService;
  usage: UsageService;
  /** Business counters (credits moved, sweeper runs); services count what they complete. */
  metrics: Metrics;
}

/** The composition root for business logic: every service gets its collaborators here, nowhere else. */
export function createServices(db: Database, config: Config, metrics = new Metrics()): Services {
  const users = new UserAccountService(db, config.USER_CACHE_TTL_MS);
  const idempotency = new IdempotencyService(db, config.IDEMPOTENCY_KEY_TTL_HOURS);
  const prices = new PriceService(db, config.PRICE_CACHE_TTL_MS);
  const credits = new CreditService(db, users, idempotency, prices, metrics);
  const sessions = new StreamingSessionService(db, credits, prices, config, idempotency, metrics, users);
  const usage = new UsageService(db, credits, prices, idempotency, metrics, config.UNPAID_LIMIT_CREDITS);
  return { users, idempotency, prices, credits, sessions, usage, metrics };
}
