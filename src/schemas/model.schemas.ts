import { MAX_PRICE_PER_1M_MICRO, toCredits } from '../lib/money';
import type { ModelPrice } from '../services/price.service';
import { creditsInput, creditsOutput, modelId, timestamp, z } from './common';

export const modelIdParams = z.object({ modelId });

/** A price per 1M tokens: at most 1,000,000 credits (API.md, Conventions "Bounds"). */
const priceInput = creditsInput
  .refine((micro) => micro <= MAX_PRICE_PER_1M_MICRO, 'must not exceed 1000000 credits per 1M tokens')
  .openapi({ description: 'Credits per 1M tokens: at most 1,000,000, up to 6 decimal places', example: 2.5 });

export const putPriceBody = z
  .object({
    inputPricePer1M: priceInput.openapi({ description: 'Credits per 1M uncached input tokens' }),
    outputPricePer1M: priceInput.openapi({ description: 'Credits per 1M output tokens' }),
    cachedInputPricePer1M: priceInput
      .optional()
      .openapi({ description: 'Credits per 1M cached input tokens; defaults to inputPricePer1M' }),
  })
  .strict();
export type PutPriceBody = z.infer<typeof putPriceBody>;

export const modelPriceSchema = z
  .object({
    modelId: z.string(),
    inputPricePer1M: creditsOutput,
    outputPricePer1M: creditsOutput,
    cachedInputPricePer1M: creditsOutput,
    priceVersion: z.number().int(),
    effectiveFrom: timestamp,
  })
  .openapi('ModelPrice');

export const modelListResponse = z.array(modelPriceSchema);

export const toModelPriceJson = (price: ModelPrice): z.infer<typeof modelPriceSchema> => ({
  modelId: price.modelId,
  inputPricePer1M: toCredits(price.inputPer1M),
  outputPricePer1M: toCredits(price.outputPer1M),
  cachedInputPricePer1M: toCredits(price.cachedInputPer1M),
  priceVersion: price.priceVersion,
  effectiveFrom: price.effectiveFrom.toISOString(),
});
