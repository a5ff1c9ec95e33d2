import { DataTypes, type Sequelize } from 'sequelize';
import { integer, nullableText, type RowModel, tableOptions, text, timestamp } from './columns';

/** A webhook endpoint (webhook_endpoints); its signing secret is stored encrypted. */
export interface WebhookEndpointAttributes {
  id: string;
  url: string;
  events: string[];
  description: string | null;
  secretEncrypted: string;
  enabled: boolean;
  disabledReason: string | null;
  consecutiveFailures: number;
  createdBy: string;
  createdAt: Date;
  updatedAt: Date;
}

export function defineWebhookEndpoint(sequelize: Sequelize): RowModel<WebhookEndpointAttributes> {
  return sequelize.define(
    'WebhookEndpoint',
    {
      id: { ...text(), primaryKey: true },
      url: text(),
      events: { type: DataTypes.ARRAY(DataTypes.TEXT), allowNull: false },
      description: nullableText(),
      secretEncrypted: text(),
      enabled: { type: DataTypes.BOOLEAN, allowNull: false },
      disabledReason: nullableText(),
      consecutiveFailures: integer(),
      createdBy: text(),
      createdAt: timestamp(),
      updatedAt: timestamp(),
    },
    { ...tableOptions, tableName: 'webhook_endpoints' },
  );
}
