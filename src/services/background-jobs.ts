import type { Logger } from '../lib/logger';
import type { Services } from './index';

export interface BackgroundJobs {
  stop(): Promise<void>;
}

/**
 * Periodic maintenance, safe to run in every instance at once: each job claims its rows with
 * FOR UPDATE SKIP LOCKED (or deletes idempotently), so instances never double-process.
 */
export function startBackgroundJobs(services: Services, intervalMs: number, logger: Logger, webhookIntervalMs = 0): BackgroundJobs {
  const webhooks = startWebhookDispatch(services, webhookIntervalMs, logger);
  if (intervalMs <= 0) return webhooks;
  let running: Promise<void> | null = null;
  let stopped = false;

  const tick = async () => {
    const expiredSessions = await services.sessions.expireOverdue(500);
    if (expiredSessions > 0) logger.info({ expiredSessions }, 'overdue streaming sessions expired');
    const deletedKeys = await services.idempotency.deleteExpired();
    if (deletedKeys > 0) logger.debug({ deletedKeys }, 'expired idempotency keys deleted');
    const scheduledGrants = await services.corrections.materializeSchedules();
    if (scheduledGrants > 0) logger.info({ scheduledGrants }, 'scheduled grants made');
    const expiredLots = await services.credits.expireLots();
    if (expiredLots > 0) logger.info({ expiredLots }, 'expired allocations written to the ledger');
    // Events (issue 15): thresholds the ledger reads, expiry notices, retention.
    await services.events.syncSettings();
    const expiringNotices = await services.events.announceExpiring();
    if (expiringNotices > 0) logger.info({ expiringNotices }, 'credits.expiring events written');
    const prunedEvents = await services.events.prune();
    if (prunedEvents > 0) logger.info({ prunedEvents }, 'events past EVENT_RETENTION_DAYS pruned');
  };

  const timer = setInterval(() => {
    if (running || stopped) return;
    running = tick()
      .then(() => services.metrics.sweeperRuns.inc({ outcome: 'ok' }))
      .catch((error) => {
        services.metrics.sweeperRuns.inc({ outcome: 'error' });
        logger.warn({ err: error }, 'background job failed; will retry');
      })
      .finally(() => {
        running = null;
      });
  }, intervalMs);
  timer.unref();

  return {
    async stop() {
      stopped = true;
      clearInterval(timer);
      await Promise.all([running, webhooks.stop()]);
    },
  };
}

/**
 * The webhook dispatcher's loop (issue 15): every `intervalMs` a round fans out new events and starts the due
 * deliveries without waiting for them, so a slow endpoint never holds up the others. Stopping waits for the
 * sends in flight (each ends within WEBHOOK_TIMEOUT_MS).
 */
function startWebhookDispatch(services: Services, intervalMs: number, logger: Logger): BackgroundJobs {
  if (intervalMs <= 0) return { stop: () => services.dispatcher.close() };
  let running: Promise<unknown> | null = null;
  let stopped = false;
  const timer = setInterval(() => {
    if (running || stopped) return;
    running = services.dispatcher
      .tick()
      .catch((error) => logger.warn({ err: error }, 'webhook dispatch round failed; will retry'))
      .finally(() => {
        running = null;
      });
  }, intervalMs);
  timer.unref();
  return {
    async stop() {
      stopped = true;
      clearInterval(timer);
      await running;
      await services.dispatcher.close();
    },
  };
}
