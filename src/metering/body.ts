import { tokenCount, z } from '../schemas/common';
import { mapProviderUsage, PROVIDER_FORMATS, PROVIDER_MAPPERS, type ProviderFormat } from './providers';
import { emptyUsage, PART_FIELDS, partProblems, type TokenUsage } from './tokens';

/**
 * Request-body pieces shared by every endpoint that takes token counts (check, calculate, initialize,
 * finalize, abort, usage/record): the part fields and `providerUsage`, their validation, and the one
 * place that turns a validated body into a TokenUsage.
 */

export const providerUsageSchema = z
  .object({
    format: z.enum(PROVIDER_FORMATS).openapi({ description: 'Which provider usage object `usage` is' }),
    usage: z
      .record(z.string(), z.unknown())
      .openapi({ description: "The provider's usage object, unchanged (Gemini: its usageMetadata)" }),
  })
  .strict()
  .openapi('ProviderUsage', {
    description: "A provider's own usage object instead of token counts; the service maps it to the token kinds",
  });
export type ProviderUsageInput = z.infer<typeof providerUsageSchema>;

/** Part fields (same names in every body) plus providerUsage. */
export const partFields = {
  cachedInputTokens: tokenCount.optional().openapi({ description: 'Part of the input tokens read from the prompt cache' }),
  cacheWriteTokens: tokenCount.optional().openapi({ description: 'Part of the input tokens written to the prompt cache' }),
  cacheWrite1hTokens: tokenCount
    .optional()
    .openapi({ description: 'Part of the input tokens written to a 1-hour prompt cache (where priced apart)' }),
  reasoningTokens: tokenCount.optional().openapi({ description: 'Part of the output tokens spent on reasoning' }),
  providerUsage: providerUsageSchema.optional(),
};

/** What a body calls its two wholes. */
export interface WholeNames {
  input: string;
  output: string;
}

type Body = Record<string, unknown>;

/** Count fields a body actually carries (wholes and parts). */
export const countFieldsGiven = (body: Body, names: WholeNames): string[] =>
  [names.input, names.output, ...PART_FIELDS].filter((field) => body[field] !== undefined);

/**
 * Validates the counts of a body: providerUsage alone, mapped without problems; or explicit counts whose
 * parts do not exceed their wholes. Problems are added to ctx with the field they concern.
 */
export function refineCounts(body: Body, ctx: z.RefinementCtx, names: WholeNames): void {
  const provider = body.providerUsage as ProviderUsageInput | undefined;
  if (provider !== undefined) {
    const counts = countFieldsGiven(body, names);
    if (counts.length > 0) {
      ctx.addIssue({ code: 'custom', path: ['providerUsage'], message: `give either providerUsage or token counts, not both (also got ${counts.join(', ')})` });
      return;
    }
    if (!(provider.format in PROVIDER_MAPPERS)) return; // the enum already reported it
    const mapped = mapProviderUsage(provider.format, provider.usage);
    if (!mapped.ok) {
      for (const problem of mapped.problems) ctx.addIssue({ code: 'custom', path: ['providerUsage', 'usage', ...problem.path], message: problem.message });
      return;
    }
    for (const problem of partProblems(mapped.usage, names)) {
      ctx.addIssue({ code: 'custom', path: ['providerUsage', 'usage'], message: `maps to ${problem.path.join('.')} that ${problem.message}` });
    }
    return;
  }
  for (const problem of partProblems(explicitUsage(body, names), names)) {
    ctx.addIssue({ code: 'custom', path: problem.path, message: problem.message });
  }
}

/** The TokenUsage a validated body describes (providerUsage mapped, absent counts 0). */
export function usageOf(body: Body, names: WholeNames): TokenUsage {
  const provider = body.providerUsage as ProviderUsageInput | undefined;
  if (provider !== undefined) {
    const mapped = mapProviderUsage(provider.format as ProviderFormat, provider.usage);
    if (!mapped.ok) throw new Error('usageOf: providerUsage was not validated');
    return mapped.usage;
  }
  return explicitUsage(body, names);
}

function explicitUsage(body: Body, names: WholeNames): TokenUsage {
  const n = (field: string) => (typeof body[field] === 'number' ? (body[field] as number) : 0);
  return {
    ...emptyUsage(),
    inputTokens: n(names.input),
    outputTokens: n(names.output),
    cachedInputTokens: n('cachedInputTokens'),
    cacheWriteTokens: n('cacheWriteTokens'),
    cacheWrite1hTokens: n('cacheWrite1hTokens'),
    reasoningTokens: n('reasoningTokens'),
  };
}
