import type { Sequelize } from 'sequelize';
import { bigint, nullableText, nullableTimestamp, type RowModel, tableOptions, text, timestamp } from './columns';

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
    },
    { ...tableOptions, tableName: 'credit_allocations' },
  );
}
