import { mapAnthropic } from './anthropic';
import { mapBedrockConverse } from './bedrock-converse';
import { mapGemini } from './gemini';
import { mapOpenAiChat } from './openai-chat';
import { mapOpenAiResponses } from './openai-responses';
import type { MapResult } from './read';

export type { MapResult } from './read';

/** Provider usage formats accepted as `providerUsage.format`, each with its mapping onto the token kinds. */
export const PROVIDER_MAPPERS = {
  'openai.chat': mapOpenAiChat,
  'openai.responses': mapOpenAiResponses,
  anthropic: mapAnthropic,
  gemini: mapGemini,
  'bedrock.converse': mapBedrockConverse,
} as const satisfies Record<string, (usage: unknown) => MapResult>;

export type ProviderFormat = keyof typeof PROVIDER_MAPPERS;
export const PROVIDER_FORMATS = Object.keys(PROVIDER_MAPPERS) as [ProviderFormat, ...ProviderFormat[]];

export function mapProviderUsage(format: ProviderFormat, usage: unknown): MapResult {
  return PROVIDER_MAPPERS[format](usage);
}
