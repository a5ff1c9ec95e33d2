import type { Sequelize } from 'sequelize';
import { bigint, type RowModel, tableOptions, timestamp } from './columns';

/** One period of a schedule, granted exactly once (primary key (schedule_id, period_start)) as one lot (credit_schedule_grants). */
export interface CreditScheduleGrantAttributes {
  scheduleId: string;
  periodStart: Date;
  periodEnd: Date;
  allocationId: string;
  createdAt: Date;
}

export function defineCreditScheduleGrant(sequelize: Sequelize): RowModel<CreditScheduleGrantAttributes> {
  return sequelize.define(
    'CreditScheduleGrant',
    {
      scheduleId: { ...bigint(), primaryKey: true },
      periodStart: { ...timestamp(), primaryKey: true },
      periodEnd: timestamp(),
      allocationId: bigint(),
      createdAt: timestamp(),
    },
    { ...tableOptions, tableName: 'credit_schedule_grants' },
  );
}
