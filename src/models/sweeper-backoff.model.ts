import type { Sequelize } from 'sequelize';
import { integer, nullableText, type RowModel, tableOptions, text, timestamp } from './columns';

/** A session or lot whose expiry failed: retried at `retryAt` with a doubling backoff, so it never blocks the others (sweeper_backoff). */
export interface SweeperBackoffAttributes {
  job: 'session_expiry' | 'lot_expiry';
  item: string;
  attempts: number;
  retryAt: Date;
  lastError: string | null;
  updatedAt: Date;
}

export function defineSweeperBackoff(sequelize: Sequelize): RowModel<SweeperBackoffAttributes> {
  return sequelize.define(
    'SweeperBackoff',
    {
      job: { ...text(), primaryKey: true },
      item: { ...text(), primaryKey: true },
      attempts: integer(),
      retryAt: timestamp(),
      lastError: nullableText(),
      updatedAt: timestamp(),
    },
    { ...tableOptions, tableName: 'sweeper_backoff' },
  );
}
