import { DataTypes, type Sequelize } from 'sequelize';
import { type RowModel, tableOptions, timestamp } from './columns';

/** The one row of settings the ledger's event functions read (event_settings): low-balance thresholds. */
export interface EventSettingsAttributes {
  id: boolean;
  lowBalanceThresholds: string[];
  updatedAt: Date;
}

export function defineEventSettings(sequelize: Sequelize): RowModel<EventSettingsAttributes> {
  return sequelize.define(
    'EventSettings',
    {
      id: { type: DataTypes.BOOLEAN, allowNull: false, primaryKey: true },
      lowBalanceThresholds: { type: DataTypes.ARRAY(DataTypes.BIGINT), allowNull: false },
      updatedAt: timestamp(),
    },
    { ...tableOptions, tableName: 'event_settings' },
  );
}
