import type { Sequelize } from 'sequelize';
import { bigint, integer, nullableBigint, nullableText, nullableTimestamp, type RowModel, tableOptions, text, timestamp } from './columns';

export type SessionStatus = 'active' | 'completed' | 'aborted' | 'expired';

/** A two-phase hold: opened by initialize, settled once by finalize, abort or expiry (streaming_sessions). */
export interface StreamingSessionAttributes {
  id: string;
  userId: string;
  modelId: string;
  priceVersion: number;
  status: SessionStatus;
  estimatedInputTokens: string | null;
  estimatedOutputTokens: string | null;
  estimatedCredits: string;
  /** What the estimated input alone costs: charged on expiry under the charge_estimated_input policy. */
  estimatedInputCredits: string | null;
  allocatedCredits: string;
  usedCredits: string | null;
  refundedCredits: string | null;
  unpaidCredits: string;
  actualInputTokens: string | null;
  actualOutputTokens: string | null;
  cachedInputTokens: string | null;
  cacheWriteTokens: string | null;
  cacheWrite1hTokens: string | null;
  reasoningTokens: string | null;
  endReason: string | null;
  requestHash: string;
  expiresAt: Date;
  endedAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
  /** Its usage record, once recorded (one per session; set by the trigger on usage_records). */
  usageRecordId: string | null;
}

export function defineStreamingSession(sequelize: Sequelize): RowModel<StreamingSessionAttributes> {
  return sequelize.define(
    'StreamingSession',
    {
      // Session ids are scoped to their user: the key is (user_id, id).
      userId: { ...text(), primaryKey: true },
      id: { ...text(), primaryKey: true },
      modelId: text(),
      priceVersion: integer(),
      status: text(),
      estimatedInputTokens: nullableBigint(),
      estimatedOutputTokens: nullableBigint(),
      estimatedCredits: bigint(),
      estimatedInputCredits: nullableBigint(),
      allocatedCredits: bigint(),
      usedCredits: nullableBigint(),
      refundedCredits: nullableBigint(),
      unpaidCredits: bigint(),
      actualInputTokens: nullableBigint(),
      actualOutputTokens: nullableBigint(),
      cachedInputTokens: nullableBigint(),
      cacheWriteTokens: { ...nullableBigint(), field: 'cache_write_tokens' },
      cacheWrite1hTokens: { ...nullableBigint(), field: 'cache_write_1h_tokens' },
      reasoningTokens: nullableBigint(),
      endReason: nullableText(),
      requestHash: text(),
      expiresAt: timestamp(),
      endedAt: nullableTimestamp(),
      createdAt: timestamp(),
      updatedAt: timestamp(),
      usageRecordId: nullableBigint(),
    },
    { ...tableOptions, tableName: 'streaming_sessions' },
  );
}
