import type { Sequelize } from 'sequelize';
import { bigint, integer, nullableBigint, nullableText, type RowModel, tableOptions, text, timestamp } from './columns';

/** One price version of a model, in micro-credits per 1M tokens (model_prices; versions are never edited). */
export interface ModelPriceAttributes {
  modelId: string;
  priceVersion: number;
  inputPricePer1m: string;
  outputPricePer1m: string;
  cachedInputPricePer1m: string;
  /** null: billed at the parent kind's price (cacheWrite -> input, cacheWrite1h -> cacheWrite, reasoning -> output). */
  cacheWritePricePer1m: string | null;
  cacheWrite1hPricePer1m: string | null;
  reasoningPricePer1m: string | null;
  effectiveFrom: Date;
  createdBy: string | null;
}

export function defineModelPrice(sequelize: Sequelize): RowModel<ModelPriceAttributes> {
  return sequelize.define(
    'ModelPrice',
    {
      modelId: { ...text(), primaryKey: true },
      priceVersion: { ...integer(), primaryKey: true },
      inputPricePer1m: { ...bigint(), field: 'input_price_per_1m' },
      outputPricePer1m: { ...bigint(), field: 'output_price_per_1m' },
      cachedInputPricePer1m: { ...bigint(), field: 'cached_input_price_per_1m' },
      cacheWritePricePer1m: { ...nullableBigint(), field: 'cache_write_price_per_1m' },
      cacheWrite1hPricePer1m: { ...nullableBigint(), field: 'cache_write_1h_price_per_1m' },
      reasoningPricePer1m: { ...nullableBigint(), field: 'reasoning_price_per_1m' },
      effectiveFrom: timestamp(),
      createdBy: nullableText(),
    },
    { ...tableOptions, tableName: 'model_prices' },
  );
}
