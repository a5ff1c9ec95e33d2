import type { Sequelize } from 'sequelize';
import { bigint, numeric, day, type RowModel, tableOptions, text } from './columns';

/** Per user per UTC day totals, for the system stats' top users (usage_user_daily; fed by a trigger). */
export interface UsageUserDailyAttributes {
  day: string;
  userId: string;
  requests: string;
  credits: string;
  unpaidCredits: string;
}

export function defineUsageUserDaily(sequelize: Sequelize): RowModel<UsageUserDailyAttributes> {
  return sequelize.define(
    'UsageUserDaily',
    {
      day: { ...day(), primaryKey: true },
      userId: { ...text(), primaryKey: true },
      requests: bigint(),
      credits: numeric(),
      unpaidCredits: numeric(),
    },
    { ...tableOptions, tableName: 'usage_user_daily' },
  );
}
