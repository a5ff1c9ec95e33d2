import { emptyUsage } from '../tokens';
import { UsageReader, type MapResult } from './read';

/**
 * Gemini `usageMetadata` (of the response, or of the last streamed chunk, which carries the totals).
 * `promptTokenCount` includes `cachedContentTokenCount`; `toolUsePromptTokenCount` (tool results fed
 * back) is input apart from it. `thoughtsTokenCount` is apart from `candidatesTokenCount` and billed as
 * output, so the whole completion is their sum and the thoughts are its reasoning part.
 */
export function mapGemini(usage: unknown): MapResult {
  const r = new UsageReader(usage);
  if (r.problems.length) return r.result(emptyUsage());
  const prompt = r.count(['promptTokenCount'], true) ?? 0;
  const toolPrompt = r.count(['toolUsePromptTokenCount']) ?? 0;
  const cached = r.count(['cachedContentTokenCount']) ?? 0;
  const candidates = r.count(['candidatesTokenCount']) ?? 0;
  const thoughts = r.count(['thoughtsTokenCount']) ?? 0;
  if (cached > prompt) r.problems.push({ path: ['cachedContentTokenCount'], message: 'must not exceed promptTokenCount' });
  return r.result({
    inputTokens: prompt + toolPrompt,
    outputTokens: candidates + thoughts,
    cachedInputTokens: cached,
    cacheWriteTokens: 0,
    cacheWrite1hTokens: 0,
    reasoningTokens: thoughts,
  });
}
