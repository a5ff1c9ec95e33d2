import fs from 'node:fs';
import path from 'node:path';
import request from 'supertest';
import { perMillionMicro } from '../../src/metering/litellm';
import { PriceService } from '../../src/services/price.service';
import { importFile, parseArgs } from '../../scripts/prices-import';
import { createTestContext, type TestContext } from '../support/context';
import { count } from '../support/db';
import { userWithRole } from '../support/tokens';

const SAMPLE = path.resolve(__dirname, '../../examples/prices/litellm-sample.json');
const sample = JSON.parse(fs.readFileSync(SAMPLE, 'utf8')) as Record<string, unknown>;

let ctx: TestContext;
const admin = userWithRole('admin');
beforeAll(async () => {
  ctx = await createTestContext();
});
afterAll(() => ctx.close());

const importList = (body: object, auth = admin.auth) => request(ctx.app).post('/api/models/import').set('Authorization', auth).send(body);
const versions = (modelId: string) => request(ctx.app).get(`/api/models/${encodeURIComponent(modelId)}/versions`).set('Authorization', admin.auth);

describe('perMillionMicro (USD per token -> micro-credits per 1M tokens)', () => {
  test.each<[number, bigint, bigint]>([
    [2.5e-6, 100_000_000n, 250_000_000n], // $2.50 / 1M at 100 credits per USD = 250 credits
    [3e-7, 100_000_000n, 30_000_000n],
    [7.5e-8, 100_000_000n, 7_500_000n],
    [1.1e-6, 100_000_000n, 110_000_000n], // 1.1e-6 is not exact in binary; its decimal form is
    [3.81469e-8, 1_000_000n, 38_147n], // 0.0381469 credits -> rounded up to the micro-credit
    [3.81461e-8, 1_000_000n, 38_147n], // 0.0381461 credits: up, not to the nearest
    [1e-15, 100_000_000n, 1n], // 0.0000001 credits: a list price above zero stays above zero (the audit's free model)
    [0, 100_000_000n, 0n],
  ])('When %p USD per token at %p micro-credits per USD, then %p micro-credits per 1M', (usd, rate, expected) => {
    expect(perMillionMicro(usd, rate)).toBe(expected);
  });
  test('When the cost is negative or not finite, then it is refused', () => {
    expect(perMillionMicro(-1e-6, 1n)).toBeNull();
    expect(perMillionMicro(Infinity, 1n)).toBeNull();
  });
});

describe('POST /api/models/import', () => {
  test('When the sample list is imported (dry run, then for real, then again), then only changed models get a version, once', async () => {
    const before = await count(ctx.db, 'model_prices');
    const dry = await importList({ format: 'litellm', creditsPerUsd: 100, prices: sample, dryRun: true });
    expect(dry.status).toBe(200);
    expect(await count(ctx.db, 'model_prices')).toBe(before);

    const res = await importList({ format: 'litellm', creditsPerUsd: 100, prices: sample });
    expect(res.status).toBe(200);
    expect(res.body).toEqual(dry.body);
    // gpt-4o matches the shipped default exactly: unchanged. o4-mini and claude-sonnet-4-5 differ from the
    // shipped list (it prices reasoning explicitly): new versions. The others are new models.
    expect(res.body.created).toEqual([
      { modelId: 'claude-sonnet-4-5', priceVersion: 2 },
      { modelId: 'gemini/gemini-2.5-flash', priceVersion: 1 },
      { modelId: 'o4-mini', priceVersion: 2 },
      { modelId: 'text-embedding-3-small', priceVersion: 1 },
    ]);
    expect(res.body.unchanged).toBe(1);
    expect(res.body.skipped.map((s: { modelId: string }) => s.modelId).sort()).toEqual(['dall-e-3', 'sample_spec', 'tts-1']);
    expect(res.body.skipped.find((s: { modelId: string }) => s.modelId === 'tts-1').reason).toMatch(/no token prices/);
    expect(await count(ctx.db, 'model_prices')).toBe(before + 4);

    const sonnet = (await versions('claude-sonnet-4-5')).body.data[1];
    expect(sonnet).toMatchObject({
      priceVersion: 2,
      inEffect: true,
      inputPricePer1M: 300,
      outputPricePer1M: 1500,
      cachedInputPricePer1M: 30,
      cacheWritePricePer1M: 375,
      cacheWrite1hPricePer1M: 600,
      reasoningPricePer1M: 1500,
    });
    const flash = (await versions('gemini/gemini-2.5-flash')).body.data[0];
    expect(flash).toMatchObject({ inputPricePer1M: 30, cachedInputPricePer1M: 7.5, cacheWritePricePer1M: 30, reasoningPricePer1M: 250 });

    const again = await importList({ format: 'litellm', creditsPerUsd: 100, prices: sample });
    expect(again.body.created).toEqual([]);
    expect(again.body.unchanged).toBe(5);
    expect(await count(ctx.db, 'model_prices')).toBe(before + 4);
  });

  test('When the command-line import runs the same file, then it creates nothing more', async () => {
    const args = parseArgs([SAMPLE, '--credits-per-usd', '100']);
    expect(args).toEqual({ file: SAMPLE, creditsPerUsd: '100', dryRun: false });
    const result = await importFile(new PriceService(ctx.db, 0), args);
    expect(result.created).toEqual([]);
    expect(result.unchanged).toBe(5);
    // Another rate changes every price: each model gets a version (dry run: nothing is written).
    const before = await count(ctx.db, 'model_prices');
    const dry = await importFile(new PriceService(ctx.db, 0), parseArgs([SAMPLE, '--credits-per-usd', '1000', '--dry-run']));
    expect(dry.created).toHaveLength(5);
    expect(await count(ctx.db, 'model_prices')).toBe(before);
  });

  test.each([
    [{ format: 'openrouter', creditsPerUsd: 100, prices: {} }, 'format'],
    [{ format: 'litellm', creditsPerUsd: 0, prices: {} }, 'creditsPerUsd'],
    [{ format: 'litellm', creditsPerUsd: 100, prices: [] }, 'prices'],
    [{ format: 'litellm', creditsPerUsd: 100 }, 'prices'],
  ])('When the body is %j, then 400 naming %s', async (body, field) => {
    const res = await importList(body);
    expect(res.status).toBe(400);
    expect(res.body.error.details.problems.map((p: { path: string }) => p.path)).toContain(field);
  });

  test('When entries are malformed or priced absurdly, then they are skipped with a reason and the rest is imported', async () => {
    const res = await importList({
      format: 'litellm',
      creditsPerUsd: 100,
      prices: {
        'ok-model': { input_cost_per_token: 1e-6, output_cost_per_token: 2e-6 },
        ['m'.repeat(256)]: { input_cost_per_token: 1e-6, output_cost_per_token: 2e-6 },
        // A real provider id: Vertex AI names versions with '@' (model ids are 1-255 printable characters).
        'vertex_ai/claude-3-5-sonnet@20240620': { input_cost_per_token: 3e-6, output_cost_per_token: 15e-6 },
        'string-cost': { input_cost_per_token: '1e-6', output_cost_per_token: 2e-6 },
        'too-dear': { input_cost_per_token: 100, output_cost_per_token: 2e-6 },
        'not-object': 42,
      },
    });
    expect(res.status).toBe(200);
    expect(res.body.created).toEqual([
      { modelId: 'ok-model', priceVersion: 1 },
      { modelId: 'vertex_ai/claude-3-5-sonnet@20240620', priceVersion: 1 },
    ]);
    expect(res.body.skipped.map((s: { modelId: string }) => s.modelId).sort()).toEqual(['m'.repeat(255), 'not-object', 'string-cost', 'too-dear']);
  });

  test('When a supervisor imports, then 403', async () => {
    const res = await importList({ format: 'litellm', creditsPerUsd: 100, prices: {} }, userWithRole('supervisor').auth);
    expect(res.status).toBe(403);
  });
});
