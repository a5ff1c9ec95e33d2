import type { Sequelize } from 'sequelize';
import { bigint, nullableBigint, nullableText, type RowModel, smallint, tableOptions, text, timestamp } from './columns';

/** The last clean reconcile run (reconcile_checkpoints; one row): incremental runs check what changed since. */
export interface ReconcileCheckpointAttributes {
  id: number;
  /** pg_snapshot_xmin of that run's snapshot, as a 64-bit xid. */
  snapshotXmin: string;
  takenAt: Date;
  mode: 'full' | 'incremental';
  checkedUsers: string;
  updatedAt: Date;
}

/** A user or budget every incremental reconcile checks until a clean run has (reconcile_dirty). */
export interface ReconcileDirtyAttributes {
  id: string;
  userId: string | null;
  budgetId: string | null;
  reason: 'deleted' | 'discrepancy' | 'truncated';
  notedAt: Date;
}

export function defineReconcileCheckpoint(sequelize: Sequelize): RowModel<ReconcileCheckpointAttributes> {
  return sequelize.define(
    'ReconcileCheckpoint',
    {
      id: { ...smallint(), primaryKey: true },
      snapshotXmin: bigint(),
      takenAt: timestamp(),
      mode: text(),
      checkedUsers: bigint(),
      updatedAt: timestamp(),
    },
    { ...tableOptions, tableName: 'reconcile_checkpoints' },
  );
}

export function defineReconcileDirty(sequelize: Sequelize): RowModel<ReconcileDirtyAttributes> {
  return sequelize.define(
    'ReconcileDirty',
    {
      id: { ...bigint(), primaryKey: true },
      userId: nullableText(),
      budgetId: nullableBigint(),
      reason: text(),
      notedAt: timestamp(),
    },
    { ...tableOptions, tableName: 'reconcile_dirty' },
  );
}
