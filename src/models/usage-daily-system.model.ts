import type { Sequelize } from 'sequelize';
import { bigint, numeric, day, type RowModel, smallint, tableOptions, text } from './columns';

/** System-wide daily rollup per model, split into 16 shards to spread contention (usage_daily_system; fed by a trigger). */
export interface UsageDailySystemAttributes {
  day: string;
  modelId: string;
  shard: number;
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

export function defineUsageDailySystem(sequelize: Sequelize): RowModel<UsageDailySystemAttributes> {
  return sequelize.define(
    'UsageDailySystem',
    {
      day: { ...day(), primaryKey: true },
      modelId: { ...text(), primaryKey: true },
      shard: { ...smallint(), primaryKey: true },
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
    { ...tableOptions, tableName: 'usage_daily_system' },
  );
}
