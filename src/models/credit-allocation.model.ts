import type { Sequelize } from 'sequelize';
import { bigint, nullableBigint, nullableText, nullableTimestamp, type RowModel, tableOptions, text, timestamp } from './columns';

/** A lot of credits: granted once, drawn down by holds and charges, expired at `expiresAt` (credit_allocations). */
export interface CreditAllocationAttributes {
  id: string;
  userId: string;
  totalCredits: string;
  remainingCredits: string;
  expiresAt: Date | null;
  allocatedBy: string;
  note: string | null;
  createdAt: Date;
  /** Its credits.expiring event, once written (one per lot; set by the trigger on events). */
  expiringEventId: string | null;
}

export function defineCreditAllocation(sequelize: Sequelize): RowModel<CreditAllocationAttributes> {
  return sequelize.define(
    'CreditAllocation',
    {
      id: { ...bigint(), primaryKey: true, autoIncrement: true },
      userId: text(),
      totalCredits: bigint(),
      remainingCredits: bigint(),
      expiresAt: nullableTimestamp(),
      allocatedBy: text(),
      note: nullableText(),
      createdAt: timestamp(),
      expiringEventId: nullableBigint(),
    },
    { ...tableOptions, tableName: 'credit_allocations' },
  );
}
