import { DataTypes, type Sequelize } from 'sequelize';
import { bigint, integer, nullableText, type RowModel, tableOptions, timestamp } from './columns';

/** One HTTP attempt of a delivery (webhook_attempts): when, status code, duration, error. */
export interface WebhookAttemptAttributes {
  id: string;
  deliveryId: string;
  attemptedAt: Date;
  statusCode: number | null;
  durationMs: number;
  error: string | null;
  success: boolean;
}

export function defineWebhookAttempt(sequelize: Sequelize): RowModel<WebhookAttemptAttributes> {
  return sequelize.define(
    'WebhookAttempt',
    {
      id: { ...bigint(), primaryKey: true },
      deliveryId: bigint(),
      attemptedAt: timestamp(),
      statusCode: { type: DataTypes.INTEGER, allowNull: true },
      durationMs: integer(),
      error: nullableText(),
      success: { type: DataTypes.BOOLEAN, allowNull: false },
    },
    { ...tableOptions, tableName: 'webhook_attempts' },
  );
}
