import { emptyUsage } from '../tokens';
import { UsageReader, type MapResult } from './read';

/**
 * OpenAI Chat Completions `usage` (the response's, or the last chunk's with stream_options.include_usage):
 * `prompt_tokens` already includes `prompt_tokens_details.cached_tokens`, and `completion_tokens` already
 * includes `completion_tokens_details.reasoning_tokens`, so both wholes and parts map straight across.
 */
export function mapOpenAiChat(usage: unknown): MapResult {
  const r = new UsageReader(usage);
  if (r.problems.length) return r.result(emptyUsage());
  const input = r.count(['prompt_tokens'], true) ?? 0;
  const output = r.count(['completion_tokens'], true) ?? 0;
  return r.result({
    inputTokens: input,
    outputTokens: output,
    cachedInputTokens: r.count(['prompt_tokens_details', 'cached_tokens']) ?? 0,
    cacheWriteTokens: 0,
    cacheWrite1hTokens: 0,
    reasoningTokens: r.count(['completion_tokens_details', 'reasoning_tokens']) ?? 0,
  });
}
