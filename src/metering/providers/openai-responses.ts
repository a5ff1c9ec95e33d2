import { emptyUsage } from '../tokens';
import { UsageReader, type MapResult } from './read';

/**
 * OpenAI Responses API `usage` (the response's, or `response.usage` of the final `response.completed`
 * stream event): `input_tokens` includes `input_tokens_details.cached_tokens`, `output_tokens` includes
 * `output_tokens_details.reasoning_tokens`.
 */
export function mapOpenAiResponses(usage: unknown): MapResult {
  const r = new UsageReader(usage);
  if (r.problems.length) return r.result(emptyUsage());
  return r.result({
    inputTokens: r.count(['input_tokens'], true) ?? 0,
    outputTokens: r.count(['output_tokens'], true) ?? 0,
    cachedInputTokens: r.count(['input_tokens_details', 'cached_tokens']) ?? 0,
    cacheWriteTokens: 0,
    cacheWrite1hTokens: 0,
    reasoningTokens: r.count(['output_tokens_details', 'reasoning_tokens']) ?? 0,
  });
}
