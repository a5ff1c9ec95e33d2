import type { Sequelize } from 'sequelize';
import { bigint, boolean, nullableBigint, nullableInteger, nullableTimestamp, type RowModel, tableOptions, text, timestamp } from './columns';

/** A recurring grant: `credits` every day, week or month of `timezone`, materialized by the background job (credit_schedules). */
export interface CreditScheduleAttributes {
  id: string;
  userId: string;
  credits: string;
  period: 'day' | 'week' | 'month';
  timezone: string;
  expireAtPeriodEnd: boolean;
  expiresInDays: number | null;
  rolloverCapCredits: string | null;
  startAt: Date;
  nextPeriodStart: Date;
  createdBy: string;
  createdAt: Date;
  deletedAt: Date | null;
}

export function defineCreditSchedule(sequelize: Sequelize): RowModel<CreditScheduleAttributes> {
  return sequelize.define(
    'CreditSchedule',
    {
      id: { ...bigint(), primaryKey: true, autoIncrement: true },
      userId: text(),
      credits: bigint(),
      period: text(),
      timezone: text(),
      expireAtPeriodEnd: boolean(),
      expiresInDays: nullableInteger(),
      rolloverCapCredits: nullableBigint(),
      startAt: timestamp(),
      nextPeriodStart: timestamp(),
      createdBy: text(),
      createdAt: timestamp(),
      deletedAt: nullableTimestamp(),
    },
    { ...tableOptions, tableName: 'credit_schedules' },
  );
}
