import type { Logger } from '../lib/logger';
import type { Services } from './index';

export interface BackgroundJobs {
  stop(): Promise<void>;
}

/**
 * Periodic maintenance, safe to run in every instance at once: each job claims its rows with
 * FOR UPDATE SKIP LOCKED (or deletes idempotently), so instances never double-process.
 */
export function startBackgroundJobs(services: Services, intervalMs: number, logger: Logger): BackgroundJobs {
  if (intervalMs <= 0) return { stop: async () => undefined };
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
      await running;
    },
  };
}
