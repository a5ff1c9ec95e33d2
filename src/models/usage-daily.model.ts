import type { Sequelize } from 'sequelize';
import { bigint, numeric, day, type RowModel, tableOptions, text } from './columns';

/** Per user × UTC day × service × operation × model rollup of usage_records, kept in the same transaction (usage_daily). */
export interface UsageDailyAttributes {
  userId: string;
  day: string;
  service: string;
  operation: string;
  /** '' for records without a model. */
  modelId: string;
  requests: string;
  credits: string;
  unpaidCredits: string;
  refundedCredits: string;
  inputTokens: string;
  outputTokens: string;
  cachedInputTokens: string;
  cacheWriteTokens: string;
  cacheWrite1hTokens: string;
  reasoningTokens: string;
}

export function defineUsageDaily(sequelize: Sequelize): RowModel<UsageDailyAttributes> {
  return sequelize.define(
    'UsageDaily',
    {
      userId: { ...text(), primaryKey: true },
      day: { ...day(), primaryKey: true },
      service: { ...text(), primaryKey: true },
      operation: { ...text(), primaryKey: true },
      modelId: { ...text(), primaryKey: true },
      requests: bigint(),
      credits: numeric(),
      unpaidCredits: numeric(),
      refundedCredits: numeric(),
      inputTokens: numeric(),
      outputTokens: numeric(),
      cachedInputTokens: numeric(),
      cacheWriteTokens: { ...numeric(), field: 'cache_write_tokens' },
      cacheWrite1hTokens: { ...numeric(), field: 'cache_write_1h_tokens' },
      reasoningTokens: numeric(),
    },
    { ...tableOptions, tableName: 'usage_daily' },
  );
}
