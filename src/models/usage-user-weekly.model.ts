import type { Sequelize } from 'sequelize';
import { bigint, numeric, day, type RowModel, tableOptions, text } from './columns';

/** Per user per ISO week totals (the week's Monday), so long top-user ranges read weeks, not days (usage_user_weekly). */
export interface UsageUserWeeklyAttributes {
  week: string;
  userId: string;
  requests: string;
  credits: string;
  unpaidCredits: string;
}

export function defineUsageUserWeekly(sequelize: Sequelize): RowModel<UsageUserWeeklyAttributes> {
  return sequelize.define(
    'UsageUserWeekly',
    {
      week: { ...day(), primaryKey: true },
      userId: { ...text(), primaryKey: true },
      requests: bigint(),
      credits: numeric(),
      unpaidCredits: numeric(),
    },
    { ...tableOptions, tableName: 'usage_user_weekly' },
  );
}
