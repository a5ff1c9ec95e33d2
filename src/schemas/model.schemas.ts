import { MAX_PRICE_PER_1M_MICRO, toCredits } from '../lib/money';
import { kindPrices, type ModelPrice } from '../services/price.service';
import { creditsInput, creditsOutput, modelId, positiveCreditsInput, timestamp, z } from './common';

export const modelIdParams = z.object({ modelId });

/** How far in the past an effectiveFrom may lie and still mean "now" (clock skew between caller and service). */
export const EFFECTIVE_FROM_SKEW_MS = 5 * 60_000;

const price = (description: string) =>
  creditsInput
    .refine((micro) => micro <= MAX_PRICE_PER_1M_MICRO, 'must not exceed 1000000 credits per 1M tokens')
    .openapi({ description });

export const putPriceBody = z
  .object({
    inputPricePer1M: price('Credits per 1M uncached input tokens'),
    outputPricePer1M: price('Credits per 1M output tokens (and reasoning tokens without their own price)'),
    cachedInputPricePer1M: price('Credits per 1M cached input tokens (cache reads); default inputPricePer1M').optional(),
    cacheWritePricePer1M: price('Credits per 1M tokens written to the prompt cache; default inputPricePer1M').optional(),
    cacheWrite1hPricePer1M: price('Credits per 1M tokens written to a 1-hour prompt cache; default cacheWritePricePer1M').optional(),
    reasoningPricePer1M: price('Credits per 1M reasoning tokens; default outputPricePer1M').optional(),
    effectiveFrom: z.iso
      .datetime({ offset: true })
      .refine((value) => Date.parse(value) >= Date.now() - EFFECTIVE_FROM_SKEW_MS, 'must be now or later')
      .optional()
      .openapi({ description: 'When this version takes effect (now or later; default now)' }),
  })
  .strict();
export type PutPriceBody = z.infer<typeof putPriceBody>;

export const modelPriceSchema = z
  .object({
    modelId: z.string(),
    inputPricePer1M: creditsOutput,
    outputPricePer1M: creditsOutput,
    cachedInputPricePer1M: creditsOutput,
    cacheWritePricePer1M: creditsOutput.openapi({ description: 'Own price, or the one it falls back to (input)' }),
    cacheWrite1hPricePer1M: creditsOutput.openapi({ description: 'Own price, or the one it falls back to (cacheWrite)' }),
    reasoningPricePer1M: creditsOutput.openapi({ description: 'Own price, or the one it falls back to (output)' }),
    priceVersion: z.number().int(),
    effectiveFrom: timestamp,
  })
  .openapi('ModelPrice');

export const modelListResponse = z.array(modelPriceSchema);

export const modelVersionsResponse = z
  .object({
    modelId: z.string(),
    data: z.array(modelPriceSchema.extend({ inEffect: z.boolean().openapi({ description: 'The version in effect now' }) })),
    nextCursor: z.string().nullable(),
  })
  .openapi('ModelPriceVersions');

export const importPricesBody = z
  .object({
    format: z.literal('litellm').openapi({ description: "LiteLLM's model_prices_and_context_window.json shape" }),
    creditsPerUsd: positiveCreditsInput.openapi({ description: 'Credits per US dollar, e.g. 100 for 1 credit = 0.01 USD' }),
    prices: z
      .record(z.string(), z.unknown())
      .openapi({ description: 'Model id -> entry with input_cost_per_token, output_cost_per_token, cache_read_input_token_cost, ... (USD per token)' }),
    dryRun: z.boolean().optional().openapi({ description: 'Report what would be created; write nothing' }),
  })
  .strict()
  .openapi('ImportPricesRequest');
export type ImportPricesBody = z.infer<typeof importPricesBody>;

export const importPricesResponse = z
  .object({
    created: z.array(z.object({ modelId: z.string(), priceVersion: z.number().int() })).openapi({
      description: 'Models whose prices changed (or are new): the version created (with dryRun: that would be created)',
    }),
    unchanged: z.number().int().openapi({ description: 'Models whose latest version already has these prices' }),
    skipped: z.array(z.object({ modelId: z.string(), reason: z.string() })).openapi({ description: 'Entries without usable token prices' }),
  })
  .openapi('ImportPricesResult');

export const toModelPriceJson = (price: ModelPrice): z.infer<typeof modelPriceSchema> => {
  const kinds = kindPrices(price);
  return {
    modelId: price.modelId,
    inputPricePer1M: toCredits(kinds.input),
    outputPricePer1M: toCredits(kinds.output),
    cachedInputPricePer1M: toCredits(kinds.cachedInput),
    cacheWritePricePer1M: toCredits(kinds.cacheWrite),
    cacheWrite1hPricePer1M: toCredits(kinds.cacheWrite1h),
    reasoningPricePer1M: toCredits(kinds.reasoning),
    priceVersion: price.priceVersion,
    effectiveFrom: price.effectiveFrom.toISOString(),
  };
};
