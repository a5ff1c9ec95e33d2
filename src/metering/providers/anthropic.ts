import { emptyUsage } from '../tokens';
import { UsageReader, type MapResult } from './read';

/**
 * Anthropic Messages `usage` (the response's, or the final `message_delta` event's, whose counts are
 * cumulative). Unlike OpenAI, `input_tokens` EXCLUDES `cache_read_input_tokens` and
 * `cache_creation_input_tokens`, so the whole prompt is their sum. When `cache_creation` splits the cache
 * writes by TTL, `ephemeral_1h_input_tokens` is cacheWrite1h and the rest of the creation (the 5-minute
 * writes) is cacheWrite. Thinking tokens are billed as output and not reported apart: reasoning stays 0.
 * A `message_delta` may omit the input counts (older streams): they then read as 0, so send the merged
 * usage of `message_start` and the last `message_delta`.
 */
export function mapAnthropic(usage: unknown): MapResult {
  const r = new UsageReader(usage);
  if (r.problems.length) return r.result(emptyUsage());
  const uncached = r.count(['input_tokens']) ?? 0;
  const read = r.count(['cache_read_input_tokens']) ?? 0;
  const creation = r.count(['cache_creation_input_tokens']);
  const fiveMinutes = r.count(['cache_creation', 'ephemeral_5m_input_tokens']) ?? 0;
  const oneHour = r.count(['cache_creation', 'ephemeral_1h_input_tokens']) ?? 0;
  const output = r.count(['output_tokens'], true) ?? 0;
  // The split and the total describe the same writes; take the larger so no written token is lost.
  const written = Math.max(creation ?? 0, fiveMinutes + oneHour);
  return r.result({
    inputTokens: uncached + read + written,
    outputTokens: output,
    cachedInputTokens: read,
    cacheWriteTokens: written - oneHour,
    cacheWrite1hTokens: oneHour,
    reasoningTokens: 0,
  });
}
