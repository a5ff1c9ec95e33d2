import type { Sequelize } from 'sequelize';
import { bigint, nullableText, type RowModel, tableOptions, text, timestamp } from './columns';

export type BudgetPeriod = 'day' | 'week' | 'month';

/** A spend cap for one user or one organization per calendar period of a time zone (budgets; docs/budgets.md). */
export interface BudgetAttributes {
  id: string;
  userId: string | null;
  orgId: string | null;
  period: BudgetPeriod;
  limitCredits: string;
  modelId: string | null;
  timezone: string;
  createdBy: string | null;
  createdAt: Date;
  updatedAt: Date;
}

export function defineBudget(sequelize: Sequelize): RowModel<BudgetAttributes> {
  return sequelize.define(
    'Budget',
    {
      id: { ...bigint(), primaryKey: true, autoIncrement: true },
      userId: nullableText(),
      orgId: nullableText(),
      period: text(),
      limitCredits: bigint(),
      modelId: nullableText(),
      timezone: text(),
      createdBy: nullableText(),
      createdAt: timestamp(),
      updatedAt: timestamp(),
    },
    { ...tableOptions, tableName: 'budgets' },
  );
}
