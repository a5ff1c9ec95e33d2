import type { Sequelize } from 'sequelize';
import { bigint, type RowModel, smallint, tableOptions, timestamp } from './columns';

/** What one budget's period has spent and what active sessions hold in it (budget_counters; created on first use). */
export interface BudgetCounterAttributes {
  budgetId: string;
  periodStart: Date;
  spentCredits: string;
  heldCredits: string;
  /** Highest budget.threshold level announced in this period: 0, 80 or 100 (percent of the limit). */
  thresholdLevel: number;
}

export function defineBudgetCounter(sequelize: Sequelize): RowModel<BudgetCounterAttributes> {
  return sequelize.define(
    'BudgetCounter',
    {
      budgetId: { ...bigint(), primaryKey: true },
      periodStart: { ...timestamp(), primaryKey: true },
      spentCredits: bigint(),
      heldCredits: bigint(),
      thresholdLevel: smallint(),
    },
    { ...tableOptions, tableName: 'budget_counters' },
  );
}
