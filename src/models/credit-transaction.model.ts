import type { Sequelize } from 'sequelize';
import { bigint, nullableBigint, nullableText, type RowModel, tableOptions, text, timestamp } from './columns';

export type LedgerType = 'grant' | 'hold' | 'capture' | 'release' | 'charge' | 'expire' | 'adjust' | 'revoke' | 'refund' | 'forgive';

/** One append-only ledger row (credit_transactions; a trigger refuses UPDATE and DELETE). */
export interface CreditTransactionAttributes {
  id: string;
  userId: string;
  type: LedgerType;
  amount: string;
  allocationId: string | null;
  sessionId: string | null;
  usageRecordId: string | null;
  actorId: string | null;
  note: string | null;
  createdAt: Date;
  /** On a refund into a new lot: the expired lot the refunded credits first came from. */
  originAllocationId: string | null;
}

export function defineCreditTransaction(sequelize: Sequelize): RowModel<CreditTransactionAttributes> {
  return sequelize.define(
    'CreditTransaction',
    {
      id: { ...bigint(), primaryKey: true, autoIncrement: true },
      userId: text(),
      type: text(),
      amount: bigint(),
      allocationId: nullableBigint(),
      sessionId: nullableText(),
      usageRecordId: nullableBigint(),
      actorId: nullableText(),
      note: nullableText(),
      createdAt: { ...timestamp(), primaryKey: true },
      originAllocationId: nullableBigint(),
    },
    { ...tableOptions, tableName: 'credit_transactions' },
  );
}
