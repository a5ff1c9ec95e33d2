/**
 * The one token-counting convention (API.md, Models and prices). Two wholes and their parts:
 * `inputTokens` counts the whole prompt, of which `cachedInputTokens` (cache reads), `cacheWriteTokens`
 * and `cacheWrite1hTokens` (cache creation) are parts; `outputTokens` counts the whole completion, of which
 * `reasoningTokens` is a part. Provider adapters (./providers) only map a provider's fields onto these;
 * pricing (costAt in src/services/price.service.ts) is the one function over them.
 */
export interface TokenUsage {
  inputTokens: number;
  outputTokens: number;
  cachedInputTokens: number;
  cacheWriteTokens: number;
  cacheWrite1hTokens: number;
  reasoningTokens: number;
}

/** The part fields, named the same in every request body. */
export const INPUT_PARTS = ['cachedInputTokens', 'cacheWriteTokens', 'cacheWrite1hTokens'] as const;
export const OUTPUT_PARTS = ['reasoningTokens'] as const;
export const PART_FIELDS = [...INPUT_PARTS, ...OUTPUT_PARTS] as const;
export type PartField = (typeof PART_FIELDS)[number];

/** Largest token count accepted anywhere (also the schema bound of every count). */
export const MAX_TOKENS = 1_000_000_000_000;

export const emptyUsage = (): TokenUsage => ({
  inputTokens: 0,
  outputTokens: 0,
  cachedInputTokens: 0,
  cacheWriteTokens: 0,
  cacheWrite1hTokens: 0,
  reasoningTokens: 0,
});

/** A problem with a usage, as a path relative to the body and a message. */
export interface UsageProblem {
  path: (string | number)[];
  message: string;
}

/**
 * Parts that together exceed their whole. `names` are the body's names of the wholes (inputTokens,
 * estimatedInputTokens, actualInputTokens, ...); the problem is reported on the last part given.
 */
export function partProblems(usage: TokenUsage, names: { input: string; output: string }): UsageProblem[] {
  const problems: UsageProblem[] = [];
  const inputParts = usage.cachedInputTokens + usage.cacheWriteTokens + usage.cacheWrite1hTokens;
  if (inputParts > usage.inputTokens) {
    const given = INPUT_PARTS.filter((part) => usage[part] > 0);
    problems.push({
      path: [given[given.length - 1] ?? 'cachedInputTokens'],
      message: `${given.join(' + ')} (${inputParts}) must not exceed ${names.input} (${usage.inputTokens}): they are parts of it`,
    });
  }
  if (usage.reasoningTokens > usage.outputTokens) {
    problems.push({
      path: ['reasoningTokens'],
      message: `must not exceed ${names.output} (${usage.outputTokens}): reasoning tokens are part of the output`,
    });
  }
  return problems;
}
