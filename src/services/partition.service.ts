import type { Database } from '../db/database';
import { ledgerOf } from '../ledger/ledger';
import type { Metrics } from '../lib/metrics';

/** The tables partitioned by month of created_at (docs/scaling.md "Partitions"). */
export const PARTITIONED_TABLES = ['usage_records', 'credit_transactions', 'events'] as const;

/** Monthly partitions kept ready beyond the current month. */
export const PARTITION_MONTHS_AHEAD = 3;

export interface PartitionStatus {
  table: string;
  /** Monthly partitions attached (the DEFAULT one not counted). */
  months: number;
  /** Whether next month's partition exists, so inserts after the turn of the month land in their own. */
  nextMonthReady: boolean;
  /** Rows in the DEFAULT partition (normally 0; see docs/scaling.md). */
  defaultRows: number;
}

/**
 * Keeps the monthly partitions of usage_records, credit_transactions and events made ahead of time: at boot
 * and from the background job (issue 18). Every instance may run it; the ledger function serialises the
 * creation and does nothing when nothing is missing.
 */
export class PartitionService {
  constructor(
    private readonly db: Database,
    private readonly metrics: Metrics,
  ) {}

  /** Creates the missing monthly partitions; returns how many were created. */
  async ensure(monthsAhead = PARTITION_MONTHS_AHEAD): Promise<number> {
    const created = await ledgerOf(this.db).ensurePartitions({ monthsAhead });
    for (const row of await this.status()) {
      this.metrics.partitionMonths.set({ table: row.table }, row.months);
      this.metrics.partitionNextMonthReady.set({ table: row.table }, row.nextMonthReady ? 1 : 0);
    }
    return created;
  }

  /** Each partitioned table's monthly partitions, next month's readiness and the DEFAULT partition's rows. */
  async status(): Promise<PartitionStatus[]> {
    const rows = await this.db.query<{ table: string; months: number; next_month_ready: boolean; default_rows: string }>(
      `SELECT t AS table,
              (SELECT count(*)::int FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                WHERE i.inhparent = to_regclass(t) AND c.relname ~ '_[0-9]{4}_[0-9]{2}$') AS months,
              to_regclass(t || '_' || to_char(date_trunc('month', now() AT TIME ZONE 'UTC') + interval '1 month', 'YYYY_MM'))
                IS NOT NULL AS next_month_ready,
              coalesce((SELECT c.reltuples::bigint FROM pg_class c WHERE c.oid = to_regclass(t || '_default')), 0)::text AS default_rows
         FROM unnest($1::text[]) AS t`,
      [PARTITIONED_TABLES],
    );
    return rows.map((r) => ({ table: r.table, months: r.months, nextMonthReady: r.next_month_ready, defaultRows: Math.max(0, Number(r.default_rows)) }));
  }
}
