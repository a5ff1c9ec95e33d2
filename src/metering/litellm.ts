import { MAX_PRICE_PER_1M_MICRO, numberToPlainString, type Micro } from '../lib/money';
import { modelId as modelIdSchema } from '../schemas/common';
import type { NewPrice } from '../services/price.service';

/**
 * LiteLLM's model_prices_and_context_window.json (a community-kept list of provider prices) to price
 * versions. Each entry has USD per token: `input_cost_per_token`, `output_cost_per_token`,
 * `cache_read_input_token_cost`, `cache_creation_input_token_cost`,
 * `cache_creation_input_token_cost_above_1hr`, `output_cost_per_reasoning_token`. They become micro-credits
 * per 1M tokens at `creditsPerUsd`, exactly (decimal arithmetic on the numbers' shortest decimal form),
 * rounded up to the micro-credit, as charges are: a price above zero never becomes a free model. Entries without input and output token prices (images, audio,
 * embeddings priced otherwise, the `sample_spec` template) are skipped with a reason, never fatal.
 */
export interface ImportEntry {
  modelId: string;
  price: NewPrice;
}
export interface Skipped {
  modelId: string;
  reason: string;
}

/** Largest price of one kind (1,000,000 credits per 1M tokens), in micro-credits. */

export function parseLiteLlm(prices: Record<string, unknown>, creditsPerUsd: Micro): { entries: ImportEntry[]; skipped: Skipped[] } {
  const entries: ImportEntry[] = [];
  const skipped: Skipped[] = [];
  for (const [modelId, spec] of Object.entries(prices)) {
    const skip = (reason: string) => skipped.push({ modelId: modelId.slice(0, 255), reason });
    if (modelId === 'sample_spec') {
      skip("LiteLLM's template entry, not a model");
      continue;
    }
    if (!modelIdSchema.safeParse(modelId).success) {
      skip('not a valid model id (1-255 printable characters)');
      continue;
    }
    if (typeof spec !== 'object' || spec === null || Array.isArray(spec)) {
      skip('not an object');
      continue;
    }
    const entry = spec as Record<string, unknown>;
    if (entry.input_cost_per_token === undefined || entry.output_cost_per_token === undefined) {
      skip('no token prices (input_cost_per_token and output_cost_per_token)');
      continue;
    }
    const problems: string[] = [];
    const convert = (field: string): Micro | null => {
      const value = entry[field];
      if (value === undefined || value === null) return null;
      const micro = typeof value === 'number' ? perMillionMicro(value, creditsPerUsd) : null;
      if (micro === null) problems.push(`${field} is not a non-negative number`);
      else if (micro > MAX_PRICE_PER_1M_MICRO) problems.push(`${field} is above 1000000 credits per 1M tokens at this rate`);
      return micro;
    };
    const input = convert('input_cost_per_token');
    const output = convert('output_cost_per_token');
    const cached = convert('cache_read_input_token_cost');
    const cacheWrite = convert('cache_creation_input_token_cost');
    const cacheWrite1h = convert('cache_creation_input_token_cost_above_1hr');
    const reasoning = convert('output_cost_per_reasoning_token');
    if (problems.length > 0 || input === null || output === null) {
      skip(problems.join('; ') || 'no token prices');
      continue;
    }
    entries.push({
      modelId,
      price: { inputPer1M: input, outputPer1M: output, cachedInputPer1M: cached ?? input, cacheWritePer1M: cacheWrite, cacheWrite1hPer1M: cacheWrite1h, reasoningPer1M: reasoning },
    });
  }
  return { entries, skipped };
}

/**
 * USD per token -> micro-credits per 1M tokens: usd x 1e6 tokens x creditsPerUsd (micro-credits per USD),
 * computed on the decimal digits (no floating point), rounded up (1e-15 USD at 100 credits per USD is 1, not
 * 0: API.md, a model is never billed at zero). null for a negative or non-finite value.
 */
export function perMillionMicro(usdPerToken: number, creditsPerUsd: Micro): Micro | null {
  if (!Number.isFinite(usdPerToken) || usdPerToken < 0) return null;
  const [whole, fraction = ''] = numberToPlainString(usdPerToken).split('.');
  const scale = 10n ** BigInt(fraction.length);
  const numerator = BigInt(whole + fraction) * 1_000_000n * creditsPerUsd;
  return (numerator + scale - 1n) / scale;
}
