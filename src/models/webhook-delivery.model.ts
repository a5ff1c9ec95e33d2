import { DataTypes, type Sequelize } from 'sequelize';
import { bigint, integer, nullableText, nullableTimestamp, type RowModel, tableOptions, text, timestamp } from './columns';

export type DeliveryStatus = 'pending' | 'delivering' | 'succeeded' | 'failed';

/** One event owed to one endpoint (webhook_deliveries); its attempts are webhook_attempts. */
export interface WebhookDeliveryAttributes {
  id: string;
  endpointId: string;
  eventId: string;
  /** The event's created_at: with eventId the key of the partitioned events table. */
  eventCreatedAt: Date;
  status: DeliveryStatus;
  attempts: number;
  nextAttemptAt: Date;
  lastStatusCode: number | null;
  lastError: string | null;
  createdAt: Date;
  deliveredAt: Date | null;
}

export function defineWebhookDelivery(sequelize: Sequelize): RowModel<WebhookDeliveryAttributes> {
  return sequelize.define(
    'WebhookDelivery',
    {
      id: { ...bigint(), primaryKey: true },
      endpointId: text(),
      eventId: bigint(),
      eventCreatedAt: timestamp(),
      status: text(),
      attempts: integer(),
      nextAttemptAt: timestamp(),
      lastStatusCode: { type: DataTypes.INTEGER, allowNull: true },
      lastError: nullableText(),
      createdAt: timestamp(),
      deliveredAt: nullableTimestamp(),
    },
    { ...tableOptions, tableName: 'webhook_deliveries' },
  );
}
