import type { Config } from '../config';
import type { Database } from '../db/database';
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
}

/** The composition root for business logic: every service gets its collaborators here, nowhere else. */
export function createServices(db: Database, config: Config): Services {
  const users = new UserAccountService(db, config.USER_CACHE_TTL_MS);
  const idempotency = new IdempotencyService(db, config.IDEMPOTENCY_KEY_TTL_HOURS);
  const prices = new PriceService(db, config.PRICE_CACHE_TTL_MS);
  const credits = new CreditService(db, users, idempotency, prices);
  const sessions = new StreamingSessionService(db, credits, prices, config, idempotency);
  const usage = new UsageService(db, credits, prices, idempotency);
  return { users, idempotency, prices, credits, sessions, usage };
}
