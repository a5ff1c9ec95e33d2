import request from 'supertest';
import { mapProviderUsage, type ProviderFormat } from '../../src/metering/providers';
import type { TokenUsage } from '../../src/metering/tokens';
import { createTestContext, type TestContext } from '../support/context';
import { grantDirect } from '../support/db';
import { userWithRole } from '../support/tokens';

/**
 * Golden cases: usage objects shaped as in each provider's documentation (non-streaming responses and the
 * final streamed chunk/event), and the token kinds they must map to, never counting a token twice.
 */
const kinds = (k: Partial<TokenUsage>): TokenUsage => ({
  inputTokens: 0,
  outputTokens: 0,
  cachedInputTokens: 0,
  cacheWriteTokens: 0,
  cacheWrite1hTokens: 0,
  reasoningTokens: 0,
  ...k,
});

const golden: [string, ProviderFormat, unknown, TokenUsage][] = [
  // OpenAI Chat Completions: prompt_tokens includes cached_tokens, completion_tokens includes reasoning_tokens.
  [
    'openai.chat response (plain)',
    'openai.chat',
    {
      prompt_tokens: 19,
      completion_tokens: 10,
      total_tokens: 29,
      prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
      completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
    },
    kinds({ inputTokens: 19, outputTokens: 10 }),
  ],
  [
    'openai.chat response with a prompt-cache hit',
    'openai.chat',
    { prompt_tokens: 2006, completion_tokens: 300, total_tokens: 2306, prompt_tokens_details: { cached_tokens: 1920 }, completion_tokens_details: { reasoning_tokens: 0 } },
    kinds({ inputTokens: 2006, cachedInputTokens: 1920, outputTokens: 300 }),
  ],
  [
    'openai.chat final stream chunk (include_usage) of a reasoning model',
    'openai.chat',
    { prompt_tokens: 75, completion_tokens: 1186, total_tokens: 1261, prompt_tokens_details: { cached_tokens: 64 }, completion_tokens_details: { reasoning_tokens: 1024 } },
    kinds({ inputTokens: 75, cachedInputTokens: 64, outputTokens: 1186, reasoningTokens: 1024 }),
  ],
  [
    'openai.chat usage without details (older models, null details)',
    'openai.chat',
    { prompt_tokens: 5, completion_tokens: 7, total_tokens: 12, prompt_tokens_details: null },
    kinds({ inputTokens: 5, outputTokens: 7 }),
  ],
  // OpenAI Responses: input_tokens includes cached_tokens, output_tokens includes reasoning_tokens.
  [
    'openai.responses response',
    'openai.responses',
    { input_tokens: 36, input_tokens_details: { cached_tokens: 0 }, output_tokens: 87, output_tokens_details: { reasoning_tokens: 0 }, total_tokens: 123 },
    kinds({ inputTokens: 36, outputTokens: 87 }),
  ],
  [
    'openai.responses response.completed event usage (reasoning, cache hit)',
    'openai.responses',
    { input_tokens: 4096, input_tokens_details: { cached_tokens: 3072 }, output_tokens: 2048, output_tokens_details: { reasoning_tokens: 1536 }, total_tokens: 6144 },
    kinds({ inputTokens: 4096, cachedInputTokens: 3072, outputTokens: 2048, reasoningTokens: 1536 }),
  ],
  // Anthropic: input_tokens EXCLUDES cache reads and cache writes.
  [
    'anthropic response (plain)',
    'anthropic',
    { input_tokens: 2095, output_tokens: 503, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, service_tier: 'standard' },
    kinds({ inputTokens: 2095, outputTokens: 503 }),
  ],
  [
    'anthropic response with cache writes split by TTL',
    'anthropic',
    {
      input_tokens: 50,
      cache_read_input_tokens: 1800,
      cache_creation_input_tokens: 248,
      output_tokens: 503,
      cache_creation: { ephemeral_1h_input_tokens: 100, ephemeral_5m_input_tokens: 148 },
    },
    kinds({ inputTokens: 50 + 1800 + 248, cachedInputTokens: 1800, cacheWriteTokens: 148, cacheWrite1hTokens: 100, outputTokens: 503 }),
  ],
  [
    'anthropic response with cache writes and no TTL split (5-minute cache)',
    'anthropic',
    { input_tokens: 21, cache_creation_input_tokens: 188086, cache_read_input_tokens: 0, output_tokens: 393 },
    kinds({ inputTokens: 21 + 188086, cacheWriteTokens: 188086, outputTokens: 393 }),
  ],
  [
    'anthropic final message_delta (cumulative counts)',
    'anthropic',
    { input_tokens: 472, cache_creation_input_tokens: 0, cache_read_input_tokens: 1024, output_tokens: 15 },
    kinds({ inputTokens: 472 + 1024, cachedInputTokens: 1024, outputTokens: 15 }),
  ],
  [
    'anthropic message_delta carrying only output_tokens',
    'anthropic',
    { output_tokens: 15 },
    kinds({ outputTokens: 15 }),
  ],
  // Gemini usageMetadata: promptTokenCount includes cachedContentTokenCount; thoughts are apart from candidates.
  [
    'gemini response (plain)',
    'gemini',
    { promptTokenCount: 4, candidatesTokenCount: 10, totalTokenCount: 14, promptTokensDetails: [{ modality: 'TEXT', tokenCount: 4 }] },
    kinds({ inputTokens: 4, outputTokens: 10 }),
  ],
  [
    'gemini final stream chunk of a thinking model with a context-cache hit',
    'gemini',
    { promptTokenCount: 12000, cachedContentTokenCount: 10000, candidatesTokenCount: 200, thoughtsTokenCount: 1000, totalTokenCount: 13200 },
    kinds({ inputTokens: 12000, cachedInputTokens: 10000, outputTokens: 1200, reasoningTokens: 1000 }),
  ],
  [
    'gemini with tool-use prompt tokens',
    'gemini',
    { promptTokenCount: 100, toolUsePromptTokenCount: 30, candidatesTokenCount: 5, totalTokenCount: 135 },
    kinds({ inputTokens: 130, outputTokens: 5 }),
  ],
  // Bedrock Converse: inputTokens EXCLUDES cacheReadInputTokens and cacheWriteInputTokens.
  [
    'bedrock.converse response (plain)',
    'bedrock.converse',
    { inputTokens: 125, outputTokens: 60, totalTokens: 185 },
    kinds({ inputTokens: 125, outputTokens: 60 }),
  ],
  [
    'bedrock.converse stream metadata event usage with cache reads and writes',
    'bedrock.converse',
    { inputTokens: 4, outputTokens: 250, totalTokens: 1500, cacheReadInputTokens: 1000, cacheWriteInputTokens: 246 },
    kinds({ inputTokens: 1250, cachedInputTokens: 1000, cacheWriteTokens: 246, outputTokens: 250 }),
  ],
  [
    'bedrock.converse with cacheDetails by TTL',
    'bedrock.converse',
    { inputTokens: 10, outputTokens: 20, totalTokens: 330, cacheWriteInputTokens: 300, cacheDetails: [{ ttl: '1h', inputTokens: 200 }, { ttl: '5m', inputTokens: 100 }] },
    kinds({ inputTokens: 310, cacheWriteTokens: 100, cacheWrite1hTokens: 200, outputTokens: 20 }),
  ],
];

describe('provider usage mappings (golden)', () => {
  test.each(golden)('When %s is mapped, then every token is counted once in its kind', (_name, format, usage, expected) => {
    expect(mapProviderUsage(format, usage)).toEqual({ ok: true, usage: expected });
  });

  test.each<[ProviderFormat, unknown, string]>([
    ['openai.chat', { completion_tokens: 1 }, 'prompt_tokens'],
    ['openai.chat', { prompt_tokens: -1, completion_tokens: 1 }, 'prompt_tokens'],
    ['openai.chat', { prompt_tokens: 1, completion_tokens: 1, prompt_tokens_details: 'x' }, 'prompt_tokens_details'],
    ['openai.responses', { input_tokens: 1.5, output_tokens: 1 }, 'input_tokens'],
    ['anthropic', { input_tokens: 1 }, 'output_tokens'],
    ['gemini', { candidatesTokenCount: 1 }, 'promptTokenCount'],
    ['bedrock.converse', { inputTokens: '3', outputTokens: 1 }, 'inputTokens'],
  ])('When %s usage %j is malformed, then the problem names %s', (format, usage, field) => {
    const result = mapProviderUsage(format, usage);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.problems.map((p) => p.path.join('.'))).toContain(field);
  });
});

describe('providerUsage through HTTP', () => {
  let ctx: TestContext;
  const admin = userWithRole('admin');
  const MODEL = 'provider-model';
  beforeAll(async () => {
    ctx = await createTestContext();
    // Per token: input 1000, cached 100, cacheWrite 1250, cacheWrite1h 2000, output 4000, reasoning 8000 micro-credits.
    await request(ctx.app).put(`/api/models/${MODEL}`).set('Authorization', admin.auth).send({
      inputPricePer1M: 1000, cachedInputPricePer1M: 100, cacheWritePricePer1M: 1250, cacheWrite1hPricePer1M: 2000, outputPricePer1M: 4000, reasoningPricePer1M: 8000,
    });
  });
  afterAll(() => ctx.close());
  afterEach(async () => {
    const res = await request(ctx.app).get('/api/admin/reconcile').set('Authorization', admin.auth);
    expect(res.body).toMatchObject({ ok: true, discrepancies: [] });
  });
  const post = (path: string, auth: string, body: object) => request(ctx.app).post(path).set('Authorization', auth).send(body);

  test('When a session is finalized with an Anthropic usage object, then it is billed per kind and the normalized counts are stored', async () => {
    const user = userWithRole('user');
    await grantDirect(ctx.db, user.id, 100);
    const init = await post('/api/streaming-sessions/initialize', user.auth, { modelId: MODEL, estimatedInputTokens: 3000, estimatedOutputTokens: 1000 });
    const usage = { input_tokens: 50, cache_read_input_tokens: 1800, cache_creation_input_tokens: 248, output_tokens: 503, cache_creation: { ephemeral_1h_input_tokens: 100, ephemeral_5m_input_tokens: 148 } };
    const res = await post('/api/streaming-sessions/finalize', user.auth, { sessionId: init.body.sessionId, providerUsage: { format: 'anthropic', usage } });
    expect(res.status).toBe(200);
    // 50*1000 + 1800*100 + 148*1250 + 100*2000 + 503*4000 = 2,627,000 micro
    expect(res.body.usedCredits).toBe(2.627);
    const [row] = await ctx.db.query<Record<string, string>>(
      `SELECT input_tokens::text, cached_input_tokens::text, cache_write_tokens::text, cache_write_1h_tokens::text, output_tokens::text
         FROM usage_records WHERE session_id = $1`,
      [init.body.sessionId],
    );
    expect(row).toEqual({ input_tokens: '2098', cached_input_tokens: '1800', cache_write_tokens: '148', cache_write_1h_tokens: '100', output_tokens: '503' });
  });

  test('When usage is recorded with an OpenAI usage object, then cached and reasoning tokens are not billed twice', async () => {
    const user = userWithRole('user');
    await grantDirect(ctx.db, user.id, 100);
    const usage = { prompt_tokens: 2000, completion_tokens: 1000, total_tokens: 3000, prompt_tokens_details: { cached_tokens: 1500 }, completion_tokens_details: { reasoning_tokens: 600 } };
    const res = await post('/api/usage/record', user.auth, { service: 'chat', operation: 'c', modelId: MODEL, providerUsage: { format: 'openai.chat', usage } });
    expect(res.status).toBe(201);
    // 500*1000 + 1500*100 + 400*4000 + 600*8000 = 7,050,000 micro
    expect(res.body.chargedCredits).toBe(7.05);
    expect(res.body.usageRecord).toMatchObject({ inputTokens: 2000, cachedInputTokens: 1500, outputTokens: 1000, reasoningTokens: 600 });
  });

  test('When calculate and check get a Gemini usageMetadata, then thoughts are billed as reasoning on top of candidates', async () => {
    const user = userWithRole('user');
    const usage = { promptTokenCount: 1000, candidatesTokenCount: 100, thoughtsTokenCount: 50, totalTokenCount: 1150 };
    const res = await post('/api/credits/calculate', user.auth, { modelId: MODEL, providerUsage: { format: 'gemini', usage } });
    expect(res.status).toBe(200);
    // 1000*1000 + 100*4000 + 50*8000 = 1,800,000 micro
    expect(res.body.credits).toBe(1.8);
    const check = await post('/api/credits/check', user.auth, { modelId: MODEL, providerUsage: { format: 'gemini', usage } });
    expect(check.body).toMatchObject({ sufficient: false, requiredCredits: 1.8 });
  });

  test.each<[string, object, string]>([
    ['an unknown format', { modelId: MODEL, providerUsage: { format: 'cohere', usage: { tokens: 1 } } }, 'providerUsage.format'],
    ['a malformed OpenAI object', { modelId: MODEL, providerUsage: { format: 'openai.chat', usage: { prompt_tokens: 'many', completion_tokens: 1 } } }, 'providerUsage.usage.prompt_tokens'],
    ['a missing required count', { modelId: MODEL, providerUsage: { format: 'bedrock.converse', usage: { outputTokens: 1 } } }, 'providerUsage.usage.inputTokens'],
    ['usage that is not an object', { modelId: MODEL, providerUsage: { format: 'gemini', usage: [1, 2] } }, 'providerUsage.usage'],
    ['providerUsage with explicit counts', { modelId: MODEL, inputTokens: 5, outputTokens: 5, providerUsage: { format: 'anthropic', usage: { input_tokens: 1, output_tokens: 1 } } }, 'providerUsage'],
    ['OpenAI cached tokens above the prompt', { modelId: MODEL, providerUsage: { format: 'openai.chat', usage: { prompt_tokens: 5, completion_tokens: 1, prompt_tokens_details: { cached_tokens: 6 } } } }, 'providerUsage.usage'],
  ])('When calculate gets %s, then 400 naming %s', async (_name, body, field) => {
    const res = await post('/api/credits/calculate', userWithRole('user').auth, body);
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('VALIDATION_ERROR');
    expect(res.body.error.details.problems.map((p: { path: string }) => p.path)).toContain(field);
  });

  test('When a usage record carries a malformed providerUsage, then 400 and nothing is recorded', async () => {
    const user = userWithRole('user');
    await grantDirect(ctx.db, user.id, 10);
    const res = await post('/api/usage/record', user.auth, { service: 's', operation: 'o', modelId: MODEL, providerUsage: { format: 'anthropic', usage: { input_tokens: -3, output_tokens: 1 } } });
    expect(res.status).toBe(400);
    expect(res.body.error.details.problems.map((p: { path: string }) => p.path)).toContain('providerUsage.usage.input_tokens');
    const [row] = await ctx.db.query<{ n: string }>(`SELECT count(*)::text AS n FROM usage_records WHERE user_id = $1`, [user.id]);
    expect(row.n).toBe('0');
  });
});
