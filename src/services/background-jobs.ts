import type { Logger } from '../lib/logger';
import type { Services } from './index';
import type { SweepFailureLog } from './sweeper-backoff';

export interface BackgroundJobs {
  stop(): Promise<void>;
}

/**
 * Periodic maintenance, safe to run in every instance at once: each job claims its rows with
 * FOR UPDATE SKIP LOCKED (or deletes idempotently), so instances never double-process.
 * Session expiry, lot expiry and key cleanup run independently (issue 12): each has its own timer and its
 * own in-flight guard, so one that fails or runs long never holds back the others; within a job, an item
 * whose expiry fails is put in backoff (sweeper_backoff) and the job goes on with the next.
 */
export function startBackgroundJobs(services: Services, intervalMs: number, logger: Logger): BackgroundJobs {
  if (intervalMs <= 0) return { stop: async () => undefined };
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
      await Promise.all(jobs.map((job) => job.running));
    },
  };
}
