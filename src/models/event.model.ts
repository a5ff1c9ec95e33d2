import { DataTypes, type Sequelize } from 'sequelize';
import { bigint, nullableText, type RowModel, tableOptions, text, timestamp } from './columns';

/** One outbox event (events), written by the ledger functions in the transaction of the change it reports. */
export interface EventAttributes {
  id: string;
  txid: string;
  type: string;
  userId: string | null;
  orgId: string | null;
  data: Record<string, unknown>;
  createdAt: Date;
  fannedOut: boolean;
}

export function defineEvent(sequelize: Sequelize): RowModel<EventAttributes> {
  return sequelize.define(
    'Event',
    {
      id: { ...bigint(), primaryKey: true },
      txid: bigint(),
      type: text(),
      userId: nullableText(),
      orgId: nullableText(),
      data: { type: DataTypes.JSONB, allowNull: false },
      createdAt: { ...timestamp(), primaryKey: true },
      fannedOut: { type: DataTypes.BOOLEAN, allowNull: false },
    },
    { ...tableOptions, tableName: 'events' },
  );
}
