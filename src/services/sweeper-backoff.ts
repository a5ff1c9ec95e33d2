import type { Database } from '../db/database';
import type { Metrics } from '../lib/metrics';

/** What a sweep job was doing when one item failed: the job, the item's key, the error. */
export type SweepFailureLog = (failure: { job: SweepJob; item: string; attempts: number; retryInSeconds: number; err: unknown }) => void;
export type SweepJob = 'session_expiry' | 'lot_expiry';

/** First retry after this many seconds, doubling per failed attempt, at most BACKOFF_MAX_SECONDS. */
export const BACKOFF_BASE_SECONDS = 5;
export const BACKOFF_MAX_SECONDS = 3600;

/**
 * Per-item retry with backoff for the sweepers (issue 12): an item (a session, a lot) whose expiry fails is
 * written to sweeper_backoff with its next attempt time, counted in metrics and logged; candidates in
 * backoff are skipped, so one poisoned item never blocks the others. Kept in PostgreSQL, so every instance
 * honours the same backoff.
 */
export class SweeperBackoff {
  constructor(
    private readonly db: Database,
    private readonly metrics: Metrics,
  ) {}

  /** SQL condition (for a candidate query) true when `itemSql` of `job` is not waiting for a retry. */
  static notWaiting(job: SweepJob, itemSql: string): string {
    return `NOT EXISTS (SELECT 1 FROM sweeper_backoff b WHERE b.job = '${job}' AND b.item = ${itemSql} AND b.retry_at > now())`;
  }

  async failed(job: SweepJob, item: string, error: unknown, log?: SweepFailureLog): Promise<void> {
    this.metrics.sweeperItemFailures.inc({ job });
    const message = error instanceof Error ? error.message.slice(0, 500) : String(error).slice(0, 500);
    try {
      const [row] = await this.db.query<{ attempts: number; retry_in: number }>(
        `INSERT INTO sweeper_backoff AS b (job, item, attempts, retry_at, last_error)
         VALUES ($1, $2, 1, now() + make_interval(secs => $3), $4)
         ON CONFLICT (job, item) DO UPDATE
            SET attempts = b.attempts + 1,
                retry_at = now() + make_interval(secs => least($5::float8, $3::float8 * 2 ^ b.attempts)),
                last_error = EXCLUDED.last_error, updated_at = now()
         RETURNING attempts, extract(epoch FROM retry_at - now())::float8 AS retry_in`,
        [job, item, BACKOFF_BASE_SECONDS, message, BACKOFF_MAX_SECONDS],
      );
      log?.({ job, item, attempts: row.attempts, retryInSeconds: Math.round(row.retry_in), err: error });
    } catch (writeError) {
      // The database may be what failed; the item is simply tried again on the next tick.
      log?.({ job, item, attempts: 0, retryInSeconds: 0, err: writeError });
    }
  }

  /** Forgets an item's failures once it went through. */
  async succeeded(job: SweepJob, item: string): Promise<void> {
    await this.db.query(`DELETE FROM sweeper_backoff WHERE job = $1 AND item = $2 RETURNING 1`, [job, item]);
  }
}
