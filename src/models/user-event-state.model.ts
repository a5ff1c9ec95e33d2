import type { Sequelize } from 'sequelize';
import { bigint, type RowModel, tableOptions, text, timestamp } from './columns';

/** A user's "once per crossing" state for credits.low / credits.depleted (user_event_state). */
export interface UserEventStateAttributes {
  userId: string;
  balanceLevel: string;
  updatedAt: Date;
}

export function defineUserEventState(sequelize: Sequelize): RowModel<UserEventStateAttributes> {
  return sequelize.define(
    'UserEventState',
    {
      userId: { ...text(), primaryKey: true },
      balanceLevel: bigint(),
      updatedAt: timestamp(),
    },
    { ...tableOptions, tableName: 'user_event_state' },
  );
}
