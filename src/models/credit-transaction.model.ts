import type { Sequelize } from 'sequelize';
import { bigint, nullableBigint, nullableText, type RowModel, tableOptions, text, timestamp } from './columns';

export type LedgerType = 'grant' | 'hold' | 'capture' | 'release' | 'charge' | 'expire' | 'adjust';

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
      createdAt: timestamp(),
    },
    { ...tableOptions, tableName: 'credit_transactions' },
  );
}
