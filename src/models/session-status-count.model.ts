import type { Sequelize } from 'sequelize';
import { bigint, type RowModel, smallint, tableOptions, text } from './columns';

/** How many sessions are in each status, sharded 16 ways (session_status_counts; kept by triggers on status changes). */
export interface SessionStatusCountAttributes {
  status: string;
  shard: number;
  sessions: string;
}

export function defineSessionStatusCount(sequelize: Sequelize): RowModel<SessionStatusCountAttributes> {
  return sequelize.define(
    'SessionStatusCount',
    {
      status: { ...text(), primaryKey: true },
      shard: { ...smallint(), primaryKey: true },
      sessions: bigint(),
    },
    { ...tableOptions, tableName: 'session_status_counts' },
  );
}
