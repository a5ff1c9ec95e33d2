import { emptyUsage } from '../tokens';
import { isObject, UsageReader, type MapResult } from './read';

/**
 * Amazon Bedrock Converse `usage` (the response's, or the ConverseStream `metadata` event's). Like
 * Anthropic, `inputTokens` excludes `cacheReadInputTokens` and `cacheWriteInputTokens`, so the whole
 * prompt is their sum. When `cacheDetails` lists writes by TTL, those with `ttl: "1h"` are cacheWrite1h
 * and the rest cacheWrite. Bedrock reports no reasoning split: reasoning stays 0.
 */
export function mapBedrockConverse(usage: unknown): MapResult {
  const r = new UsageReader(usage);
  if (r.problems.length) return r.result(emptyUsage());
  const uncached = r.count(['inputTokens'], true) ?? 0;
  const output = r.count(['outputTokens'], true) ?? 0;
  const read = r.count(['cacheReadInputTokens']) ?? 0;
  const write = r.count(['cacheWriteInputTokens']) ?? 0;
  let oneHour = 0;
  r.array(['cacheDetails']).forEach((detail, i) => {
    if (!isObject(detail)) {
      r.problems.push({ path: ['cacheDetails', i], message: 'must be an object' });
      return;
    }
    const tokens = r.count(['cacheDetails', i, 'inputTokens']) ?? 0;
    if (detail.ttl === '1h') oneHour += tokens;
  });
  if (oneHour > write) r.problems.push({ path: ['cacheDetails'], message: 'the 1h writes must not exceed cacheWriteInputTokens' });
  return r.result({
    inputTokens: uncached + read + write,
    outputTokens: output,
    cachedInputTokens: read,
    cacheWriteTokens: write - oneHour,
    cacheWrite1hTokens: oneHour,
    reasoningTokens: 0,
  });
}
