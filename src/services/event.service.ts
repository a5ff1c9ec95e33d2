import type { Transaction } from 'sequelize';
import type { Database } from '../db/database';
import { ledgerOf } from '../ledger/ledger';
import { forbidden } from '../lib/errors';
import type { EventsQuery, EventType } from '../schemas/event.schemas';
import type { Caller } from './user-account.service';

/** An event as the API and webhook bodies show it. */
export interface EventJson {
  id: string;
  type: EventType;
  createdAt: string;
  userId: string | null;
  orgId?: string;
  data: Record<string, unknown>;
}

export interface EventRow {
  id: string;
  type: EventType;
  created_at: Date;
  user_id: string | null;
  org_id: string | null;
  data: Record<string, unknown>;
}

export const EVENT_COLUMNS = 'id, type, created_at, user_id, org_id, data';

export const toEventJson = (row: EventRow): EventJson => ({
  id: `evt_${row.id}`,
  type: row.type,
  createdAt: row.created_at.toISOString(),
  userId: row.user_id,
  ...(row.org_id === null ? {} : { orgId: row.org_id }),
  data: row.data,
});

/** The outbox row number of a public event id (validated by eventId in the schemas). */
export const eventNumber = (id: string): string => id.slice('evt_'.length);

/**
 * The outbox: events are written by the ledger functions (src/ledger/sql) in the transaction
 * of the change they report; this service reads them, keeps the thresholds the functions read, announces
 * lots about to expire and prunes old events.
 */
export class EventService {
  constructor(
    private readonly db: Database,
    private readonly options: { lowBalanceThresholds: bigint[]; expiringNoticeDays: number; retentionDays: number },
  ) {}

  /**
   * Writes LOW_BALANCE_THRESHOLDS where the ledger functions read them (event_settings). Run at boot and by
   * the background job; with instances configured differently, the last writer wins.
   */
  async syncSettings(): Promise<void> {
    await this.db.query(
      `UPDATE event_settings SET low_balance_thresholds = $1::bigint[], updated_at = now()
        WHERE id AND low_balance_thresholds IS DISTINCT FROM $1::bigint[] RETURNING 1`,
      [this.options.lowBalanceThresholds.map(String)],
    );
  }

  /** Emits one event in `tx` (for services whose change is made in TypeScript). */
  async emit(type: EventType, userId: string | null, data: Record<string, unknown>, tx?: Transaction): Promise<string> {
    return `evt_${await ledgerOf(this.db).emitEvent({ type, userId, data }, tx)}`;
  }

  /**
   * GET /api/events: oldest first, after an event id (exclusive). Ordered by (writing transaction, id) and
   * showing only events of transactions older than every one still running, so an event that commits
   * later can never land before a cursor a consumer already holds.
   */
  async list(caller: Caller, query: EventsQuery) {
    const userId = query.userId ?? (caller.role === 'admin' ? undefined : caller.userId);
    if (caller.role !== 'admin' && userId !== caller.userId) throw forbidden('Only admins may read other users\u2019 events');
    const after = query.after ?? query.cursor;
    // Where to continue: the cursor event's (txid, id); one pruned since continues after its id.
    let from: [string, string] = ['-1', '0'];
    if (after) {
      const [cursor] = await this.db.query<{ txid: string; id: string }>(`SELECT txid, id FROM events WHERE id = $1`, [eventNumber(after)]);
      from = cursor ? [cursor.txid, cursor.id] : ['-1', eventNumber(after)];
    }
    const rows = await this.db.query<EventRow>(
      `SELECT ${EVENT_COLUMNS} FROM events
        WHERE txid < pg_snapshot_xmin(pg_current_snapshot())::text::bigint
          AND ($1::text IS NULL OR type = $1) AND ($2::text IS NULL OR user_id = $2)
          AND (txid, id) > ($3::bigint, $4::bigint)
          AND ($3::bigint >= 0 OR id > $4::bigint)
        ORDER BY txid, id
        LIMIT $5`,
      [query.type ?? null, userId ?? null, from[0], from[1], query.limit + 1],
    );
    const data = rows.slice(0, query.limit).map(toEventJson);
    return { data, nextCursor: rows.length > query.limit ? data[data.length - 1].id : null };
  }

  /** credits.expiring for lots within EXPIRING_NOTICE_DAYS of expiry, once per lot. Returns how many. */
  async announceExpiring(max = 1000): Promise<number> {
    return ledgerOf(this.db).announceExpiring({ noticeDays: this.options.expiringNoticeDays, limit: max });
  }

  /**
   * Deletes events older than EVENT_RETENTION_DAYS whose deliveries are all finished (with their deliveries
   * and attempts), in batches of `batch` rows, at most `maxBatches` per call. Returns how many events.
   */
  async prune(batch = 1000, maxBatches = 10): Promise<number> {
    let total = 0;
    for (let i = 0; i < maxBatches; i++) {
      const rows = await this.db.query<{ n: string }>(
        `WITH doomed AS (
           SELECT e.id FROM events e
            WHERE e.created_at < now() - make_interval(days => $1)
              AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = e.id AND d.status IN ('pending', 'delivering'))
            ORDER BY e.created_at
            LIMIT $2
              FOR UPDATE SKIP LOCKED),
         gone AS (DELETE FROM events WHERE id IN (SELECT id FROM doomed) RETURNING 1)
         SELECT count(*) AS n FROM gone`,
        [this.options.retentionDays, batch],
      );
      const n = Number(rows[0].n);
      total += n;
      if (n < batch) break;
    }
    return total;
  }
}
