import { DataTypes, type Sequelize } from 'sequelize';
import { bigint, nullableText, nullableTimestamp, type RowModel, tableOptions, text, timestamp } from './columns';

/** One usage event, charged when recorded (usage_records). `credits = charged + unpaid`. */
export interface UsageRecordAttributes {
  id: string;
  userId: string;
  sessionId: string | null;
  service: string;
  operation: string;
  modelId: string | null;
  priceVersion: number | null;
  inputTokens: string;
  outputTokens: string;
  cachedInputTokens: string;
  cacheWriteTokens: string;
  cacheWrite1hTokens: string;
  reasoningTokens: string;
  credits: string;
  chargedCredits: string;
  unpaidCredits: string;
  /** Credits given back by refunds (forgiven unpaid plus returned charges); at most `credits`. */
  refundedCredits: string;
  metadata: Record<string, unknown> | null;
  recordedBy: string | null;
  /** When the usage happened (occurredAt; it may be up to 35 days before it was recorded). */
  createdAt: Date;
  /** When it was recorded (null for records from before occurredAt existed). */
  recordedAt: Date | null;
}

export function defineUsageRecord(sequelize: Sequelize): RowModel<UsageRecordAttributes> {
  return sequelize.define(
    'UsageRecord',
    {
      id: { ...bigint(), primaryKey: true, autoIncrement: true },
      userId: text(),
      sessionId: nullableText(),
      service: text(),
      operation: text(),
      modelId: nullableText(),
      priceVersion: { type: DataTypes.INTEGER, allowNull: true },
      inputTokens: bigint(),
      outputTokens: bigint(),
      cachedInputTokens: bigint(),
      cacheWriteTokens: { ...bigint(), field: 'cache_write_tokens' },
      cacheWrite1hTokens: { ...bigint(), field: 'cache_write_1h_tokens' },
      reasoningTokens: bigint(),
      credits: bigint(),
      chargedCredits: bigint(),
      unpaidCredits: bigint(),
      refundedCredits: bigint(),
      metadata: { type: DataTypes.JSONB, allowNull: true },
      recordedBy: nullableText(),
      createdAt: { ...timestamp(), primaryKey: true },
      recordedAt: nullableTimestamp(),
    },
    { ...tableOptions, tableName: 'usage_records' },
  );
}
