import type { Logger } from '../lib/logger';
import type { Services } from './index';
import type { SweepFailureLog } from './sweeper-backoff';

export interface BackgroundJobs {
  stop(): Promise<void>;
}

/**
 * Periodic maintenance, safe to run in every instance at once: each job claims its rows with
 * FOR UPDATE SKIP LOCKED (or deletes idempotently), so instances never double-process.
 * Each job has its own timer and its own in-flight guard (issue 12), so one that fails or runs long never
 * holds back the others; within a sweeper, an item whose expiry fails is put in backoff (sweeper_backoff)
 * and the sweeper goes on with the next. The webhook dispatcher runs on its own loop.
 */
export function startBackgroundJobs(services: Services, intervalMs: number, logger: Logger, webhookIntervalMs = 0): BackgroundJobs {
  const webhooks = startWebhookDispatch(services, webhookIntervalMs, logger);
  if (intervalMs <= 0) return webhooks;
  let stopped = false;
  const logFailure: SweepFailureLog = ({ err, ...item }) =>
    logger.warn({ err, ...item }, 'sweeper item failed; it is retried with backoff and the others go on');

  const jobs = [
    every('session expiry', async () => {
      const expiredSessions = await services.sessions.expireOverdue(500, logFailure);
      if (expiredSessions > 0) logger.info({ expiredSessions }, 'overdue streaming sessions expired');
    }),
    every('lot expiry', async () => {
      const expiredLots = await services.credits.expireLots(1000, logFailure);
      if (expiredLots > 0) logger.info({ expiredLots }, 'expired allocations written to the ledger');
    }),
    every('idempotency key cleanup', async () => {
      const deletedKeys = await services.idempotency.deleteExpired();
      if (deletedKeys > 0) logger.debug({ deletedKeys }, 'expired idempotency keys deleted');
    }),
    every('scheduled grants', async () => {
      const scheduledGrants = await services.corrections.materializeSchedules();
      if (scheduledGrants > 0) logger.info({ scheduledGrants }, 'scheduled grants made');
    }),
    // Partitions (issue 18): next months' partitions of usage_records, credit_transactions and events.
    every('partitions', async () => {
      const partitionsCreated = await services.partitions.ensure();
      if (partitionsCreated > 0) logger.info({ partitionsCreated }, 'monthly partitions created ahead');
    }),
    // Events (issue 15): thresholds the ledger reads, expiry notices, retention.
    every('events', async () => {
      await services.events.syncSettings();
      const expiringNotices = await services.events.announceExpiring();
      if (expiringNotices > 0) logger.info({ expiringNotices }, 'credits.expiring events written');
      const prunedEvents = await services.events.prune();
      if (prunedEvents > 0) logger.info({ prunedEvents }, 'events past EVENT_RETENTION_DAYS pruned');
    }),
  ];

  function every(name: string, work: () => Promise<void>) {
    const job = { running: null as Promise<void> | null, timer: undefined as NodeJS.Timeout | undefined };
    job.timer = setInterval(() => {
      if (job.running || stopped) return;
      job.running = work()
        .then(() => services.metrics.sweeperRuns.inc({ outcome: 'ok' }))
        .catch((error) => {
          services.metrics.sweeperRuns.inc({ outcome: 'error' });
          logger.warn({ err: error, job: name }, 'background job failed; will retry');
        })
        .finally(() => {
          job.running = null;
        });
    }, intervalMs);
    job.timer.unref();
    return job;
  }

  return {
    async stop() {
      stopped = true;
      for (const job of jobs) clearInterval(job.timer);
      await Promise.all([...jobs.map((job) => job.running), webhooks.stop()]);
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
