import type { Sequelize } from 'sequelize';

export type ReadTarget = 'replica' | 'primary';

/**
 * Decides whether a read that may be slightly stale (statistics, lists, exports) goes to the streaming
 * replica: only while its measured replay lag is under REPLICA_MAX_LAG_MS. The lag is measured at most
 * once per `checkEveryMs` (one query, shared by concurrent reads); a replica that fails to answer is left
 * alone for a few seconds. Money paths and balances never come here: they always use the primary.
 */
export class ReplicaRouter {
  private checkedAt = 0;
  private usable = false;
  private downUntil = 0;
  private checking: Promise<boolean> | null = null;
  /** The replay lag last measured, in ms (null: unknown, e.g. the standby is not streaming). */
  lastLagMs: number | null = null;

  constructor(
    readonly replica: Sequelize,
    private readonly maxLagMs: number,
    private readonly checkEveryMs = 1_000,
  ) {}

  /** True when the next read may go to the replica. Never throws: an unreachable replica means no. */
  async useReplica(): Promise<boolean> {
    const now = Date.now();
    if (now < this.downUntil) return false;
    if (now - this.checkedAt < this.checkEveryMs) return this.usable;
    this.checking ??= this.measure().finally(() => {
      this.checking = null;
    });
    return this.checking;
  }

  /** The replica failed a read: use the primary for a while without asking it again. */
  markDown(): void {
    this.usable = false;
    this.lastLagMs = null;
    this.downUntil = Date.now() + 5 * this.checkEveryMs;
  }

  private async measure(): Promise<boolean> {
    try {
      // Nothing received but not yet replayed: no lag, however long ago the last write was. Otherwise the lag
      // is the age of the last replayed commit. A server that is not a standby has no lag by definition.
      const [rows] = await this.replica.query(
        `SELECT CASE WHEN NOT pg_is_in_recovery() THEN 0
                     WHEN pg_last_wal_receive_lsn() IS NULL OR pg_last_xact_replay_timestamp() IS NULL THEN NULL
                     WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
                     ELSE (extract(epoch FROM now() - pg_last_xact_replay_timestamp()) * 1000)::bigint END AS lag_ms`,
      );
      const lag = (rows as Array<{ lag_ms: string | number | null }>)[0]?.lag_ms;
      this.lastLagMs = lag === null || lag === undefined ? null : Number(lag);
      this.usable = this.lastLagMs !== null && this.lastLagMs < this.maxLagMs;
    } catch {
      this.lastLagMs = null;
      this.usable = false;
      this.downUntil = Date.now() + 5 * this.checkEveryMs;
    }
    this.checkedAt = Date.now();
    return this.usable;
  }
}
