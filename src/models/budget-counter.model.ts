import type { Sequelize } from 'sequelize';
import { bigint, type RowModel, tableOptions, timestamp } from './columns';

/** What one budget's period has spent and what active sessions hold in it (budget_counters; created on first use). */
export interface BudgetCounterAttributes {
  budgetId: string;
  periodStart: Date;
  spentCredits: string;
  heldCredits: string;
}

export function defineBudgetCounter(sequelize: Sequelize): RowModel<BudgetCounterAttributes> {
  return sequelize.define(
    'BudgetCounter',
    {
      budgetId: { ...bigint(), primaryKey: true },
      periodStart: { ...timestamp(), primaryKey: true },
      spentCredits: bigint(),
      heldCredits: bigint(),
    },
    { ...tableOptions, tableName: 'budget_counters' },
  );
}
