import type { Sequelize } from 'sequelize';
import { bigint, numeric, type RowModel, smallint, tableOptions } from './columns';

/** All-time usage totals, one row per shard (usage_totals; fed by a trigger). */
export interface UsageTotalAttributes {
  shard: number;
  requests: string;
  credits: string;
  unpaidCredits: string;
  refundedCredits: string;
}

export function defineUsageTotal(sequelize: Sequelize): RowModel<UsageTotalAttributes> {
  return sequelize.define(
    'UsageTotal',
    {
      shard: { ...smallint(), primaryKey: true },
      requests: bigint(),
      credits: numeric(),
      unpaidCredits: numeric(),
      refundedCredits: numeric(),
    },
    { ...tableOptions, tableName: 'usage_totals' },
  );
}
