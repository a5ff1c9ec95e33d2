import type { Config } from '../config';
import type { Database } from '../db/database';
import { Metrics } from '../lib/metrics';
import { BudgetService } from './budget.service';
import { CorrectionService } from './correction.service';
import { CreditService } from './credit.service';
import { IdempotencyService } from './idempotency.service';
import { PriceService } from './price.service';
import { StreamingSessionService } from './streaming-session.service';
import { UsageService } from './usage.service';
import { UserAccountService } from './user-account.service';
import { EventService } from './event.service';
import { PartitionService } from './partition.service';
import { WebhookDispatcher } from './webhook-dispatcher';
import { WebhookService } from './webhook.service';

export interface Services {
  users: UserAccountService;
  idempotency: IdempotencyService;
  prices: PriceService;
  credits: CreditService;
  sessions: StreamingSessionService;
  usage: UsageService;
  corrections: CorrectionService;
  budgets: BudgetService;
  /** Business counters (credits moved, sweeper runs); services count what they complete. */
  metrics: Metrics;
  // Events and webhooks (issue 15).
  events: EventService;
  webhooks: WebhookService;
  dispatcher: WebhookDispatcher;
  /** Monthly partitions made ahead (issue 18). */
  partitions: PartitionService;
}

/** The composition root for business logic: every service gets its collaborators here, nowhere else. */
export function createServices(db: Database, config: Config, metrics = new Metrics()): Services {
  const users = new UserAccountService(db, config.USER_CACHE_TTL_MS);
  const idempotency = new IdempotencyService(db, config.IDEMPOTENCY_KEY_TTL_HOURS);
  const prices = new PriceService(db, config.PRICE_CACHE_TTL_MS);
  const budgets = new BudgetService(db, users, prices, idempotency);
  const credits = new CreditService(db, users, idempotency, prices, metrics, budgets, config.SETTLE_UNPAID_ON_GRANT, config.RECONCILE_STATEMENT_TIMEOUT_MS);
  const sessions = new StreamingSessionService(db, credits, prices, config, idempotency, metrics, users);
  const usage = new UsageService(db, credits, prices, idempotency, metrics, users, config.UNPAID_LIMIT_CREDITS);
  const corrections = new CorrectionService(db, credits, idempotency, { settleUnpaidOnGrant: config.SETTLE_UNPAID_ON_GRANT }, metrics);
  const events = new EventService(db, {
    lowBalanceThresholds: config.lowBalanceThresholds,
    expiringNoticeDays: config.EXPIRING_NOTICE_DAYS,
    retentionDays: config.EVENT_RETENTION_DAYS,
  });
  const dispatcher = new WebhookDispatcher(db, dispatcherOptions(config), metrics);
  const webhooks = new WebhookService(db, events, dispatcher, { allowPrivate: config.WEBHOOK_ALLOW_PRIVATE, secretKey: config.webhookSecretKey });
  const partitions = new PartitionService(db, metrics);
  return { users, idempotency, prices, credits, sessions, usage, corrections, budgets, metrics, events, webhooks, dispatcher, partitions };
}

export function dispatcherOptions(config: Config) {
  return {
    timeoutMs: config.WEBHOOK_TIMEOUT_MS,
    retryBaseMs: config.WEBHOOK_RETRY_BASE_MS,
    retryHours: config.WEBHOOK_RETRY_HOURS,
    concurrencyPerEndpoint: config.WEBHOOK_ENDPOINT_CONCURRENCY,
    disableAfterFailures: config.WEBHOOK_DISABLE_AFTER_FAILURES,
    allowPrivate: config.WEBHOOK_ALLOW_PRIVATE,
    secretKey: config.webhookSecretKey,
  };
}
