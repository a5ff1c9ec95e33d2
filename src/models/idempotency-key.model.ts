import { DataTypes, type Sequelize } from 'sequelize';
import { integer, type RowModel, tableOptions, text, timestamp } from './columns';

/** A caller's Idempotency-Key and the response it produced (idempotency_keys), written with the work it guards. */
export interface IdempotencyKeyAttributes {
  callerId: string;
  key: string;
  requestHash: string;
  responseStatus: number;
  responseBody: unknown;
  createdAt: Date;
  expiresAt: Date;
}

export function defineIdempotencyKey(sequelize: Sequelize): RowModel<IdempotencyKeyAttributes> {
  return sequelize.define(
    'IdempotencyKey',
    {
      callerId: { ...text(), primaryKey: true },
      key: { ...text(), primaryKey: true },
      requestHash: text(),
      responseStatus: integer(),
      // json, not jsonb: a replay returns the first response byte for byte.
      responseBody: { type: DataTypes.JSON, allowNull: false },
      createdAt: timestamp(),
      expiresAt: timestamp(),
    },
    { ...tableOptions, tableName: 'idempotency_keys' },
  );
}
