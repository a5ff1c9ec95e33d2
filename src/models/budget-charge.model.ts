import type { Sequelize } from 'sequelize';
import { bigint, nullableBigint, nullableText, type RowModel, tableOptions, text, timestamp } from './columns';

/** What one session or usage record put on one budget counter: held (while active) and spent (budget_charges). */
export interface BudgetChargeAttributes {
  id: string;
  budgetId: string;
  periodStart: Date;
  userId: string;
  sessionId: string | null;
  usageRecordId: string | null;
  heldCredits: string;
  spentCredits: string;
  createdAt: Date;
}

export function defineBudgetCharge(sequelize: Sequelize): RowModel<BudgetChargeAttributes> {
  return sequelize.define(
    'BudgetCharge',
    {
      id: { ...bigint(), primaryKey: true, autoIncrement: true },
      budgetId: bigint(),
      periodStart: timestamp(),
      userId: text(),
      sessionId: nullableText(),
      usageRecordId: nullableBigint(),
      heldCredits: bigint(),
      spentCredits: bigint(),
      createdAt: timestamp(),
    },
    { ...tableOptions, tableName: 'budget_charges' },
  );
}
