import fc from 'fast-check';
import request from 'supertest';
import { costAt, type ModelPrice } from '../../src/services/price.service';
import { createTestContext, type TestContext } from '../support/context';
import { userWithRole } from '../support/tokens';

/**
 * An independent cost model: written from API.md's words, not from the service's code. Prices are
 * micro-credits per 1M tokens; a missing kind price is looked up through its parent chain; the cost is
 * the exact sum over the six kinds, rounded up once.
 */
type Kind = 'input' | 'cachedInput' | 'cacheWrite' | 'cacheWrite1h' | 'output' | 'reasoning';
const PARENT: Partial<Record<Kind, Kind>> = { cacheWrite1h: 'cacheWrite', cacheWrite: 'input', cachedInput: 'input', reasoning: 'output' };
type Prices = Partial<Record<Kind, bigint>> & { input: bigint; output: bigint };

function priceOf(prices: Prices, kind: Kind): bigint {
  let k: Kind | undefined = kind;
  while (k !== undefined) {
    const own = prices[k];
    if (own !== undefined) return own;
    k = PARENT[k];
  }
  throw new Error('unreachable: input and output always have prices');
}

interface Counts {
  input: number;
  output: number;
  cached: number;
  cw: number;
  cw1h: number;
  reasoning: number;
}

function modelCost(prices: Prices, c: Counts): bigint {
  const billed: [Kind, number][] = [
    ['input', c.input - c.cached - c.cw - c.cw1h],
    ['cachedInput', c.cached],
    ['cacheWrite', c.cw],
    ['cacheWrite1h', c.cw1h],
    ['output', c.output - c.reasoning],
    ['reasoning', c.reasoning],
  ];
  let microTimesMillion = 0n;
  for (const [kind, tokens] of billed) microTimesMillion += BigInt(tokens) * priceOf(prices, kind);
  const whole = microTimesMillion / 1_000_000n;
  return microTimesMillion % 1_000_000n === 0n ? whole : whole + 1n;
}

const MAX_PRICE = 1_000_000n * 1_000_000n; // 1,000,000 credits per 1M tokens, in micro-credits
const price = fc.bigInt({ min: 0n, max: MAX_PRICE });
const pricesArb = fc.record(
  { input: price, output: price, cachedInput: price, cacheWrite: price, cacheWrite1h: price, reasoning: price },
  { requiredKeys: ['input', 'output'] },
);
// Wholes, then parts carved out of them so that they never exceed them.
const countsArb = fc
  .record({
    input: fc.integer({ min: 0, max: 2_000_000 }),
    output: fc.integer({ min: 0, max: 2_000_000 }),
    a: fc.double({ min: 0, max: 1, noNaN: true }),
    b: fc.double({ min: 0, max: 1, noNaN: true }),
    c: fc.double({ min: 0, max: 1, noNaN: true }),
    r: fc.double({ min: 0, max: 1, noNaN: true }),
  })
  .map(({ input, output, a, b, c, r }) => {
    const cached = Math.floor(input * a);
    const cw = Math.floor((input - cached) * b);
    const cw1h = Math.floor((input - cached - cw) * c);
    return { input, output, cached, cw, cw1h, reasoning: Math.floor(output * r) };
  });

function asModelPrice(p: Prices): ModelPrice {
  return {
    modelId: 'm',
    priceVersion: 1,
    inputPer1M: p.input,
    outputPer1M: p.output,
    // The service stores cachedInput resolved (PUT writes input's price when none is given).
    cachedInputPer1M: p.cachedInput ?? p.input,
    cacheWritePer1M: p.cacheWrite ?? null,
    cacheWrite1hPer1M: p.cacheWrite1h ?? null,
    reasoningPer1M: p.reasoning ?? null,
    effectiveFrom: new Date(0),
    createdAt: new Date(0),
  };
}

const asTokens = (c: Counts) => ({
  inputTokens: c.input,
  outputTokens: c.output,
  cachedInputTokens: c.cached,
  cacheWriteTokens: c.cw,
  cacheWrite1hTokens: c.cw1h,
  reasoningTokens: c.reasoning,
});

describe('costAt against an independent cost model (property)', () => {
  test('When random counts of every kind are priced at random prices (some kinds unpriced), then the cost is exact to the micro-credit', () => {
    fc.assert(
      fc.property(pricesArb, countsArb, (prices, counts) => {
        expect(costAt(asModelPrice(prices), asTokens(counts)).total).toBe(modelCost(prices, counts));
      }),
      { numRuns: 2000 },
    );
  });

  test.each<[string, Prices, bigint]>([
    // 1M tokens of one kind at its (fallback) price, in micro-credits.
    ['cacheWrite1h falls back to cacheWrite', { input: 1n, output: 2n, cacheWrite: 7n }, 7n],
    ['cacheWrite1h falls back to input when cacheWrite has no price', { input: 3n, output: 2n }, 3n],
    ['cacheWrite1h uses its own price', { input: 3n, output: 2n, cacheWrite: 7n, cacheWrite1h: 11n }, 11n],
  ])('When 1M cacheWrite1h tokens are priced and %s, then the cost is that price', (_name, prices, expected) => {
    const tokens = { inputTokens: 1_000_000, outputTokens: 0, cacheWrite1hTokens: 1_000_000 };
    expect(costAt(asModelPrice(prices), tokens).total).toBe(expected);
  });

  test('When reasoning has no price, then it is billed at output; cached input without price at input', () => {
    const price = asModelPrice({ input: 5_000_000n, output: 9_000_000n });
    const cost = costAt(price, { inputTokens: 1_000_000, outputTokens: 1_000_000, cachedInputTokens: 400_000, reasoningTokens: 250_000 });
    expect(cost.breakdown).toEqual({ input: 3_000_000n, cachedInput: 2_000_000n, cacheWrite: 0n, cacheWrite1h: 0n, output: 6_750_000n, reasoning: 2_250_000n });
    expect(cost.total).toBe(14_000_000n);
  });

  test('When one token costs a fraction of a micro-credit, then the total rounds up once, not per kind', () => {
    // 1 token at 0.4 micro and 1 at 0.4 micro: exact 0.8 -> 1 micro-credit (per-kind rounding would give 2).
    const price = asModelPrice({ input: 400_000n, output: 400_000n });
    const cost = costAt(price, { inputTokens: 1, outputTokens: 1 });
    expect(cost.total).toBe(1n);
    expect(cost.breakdown.input + cost.breakdown.output).toBe(2n);
  });
});

describe('POST /api/credits/calculate against the cost model (property, through HTTP)', () => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext();
  });
  afterAll(() => ctx.close());

  const admin = userWithRole('admin');
  const user = userWithRole('user');
  const credits = (micro: bigint) => Number(micro) / 1_000_000;

  test('When a model gets random prices (some kinds omitted) and random counts are calculated, then credits equal the model', async () => {
    let n = 0;
    await fc.assert(
      fc.asyncProperty(pricesArb, countsArb, async (prices, counts) => {
        const modelId = `prop-model-${n++}`;
        const body: Record<string, string> = {};
        const field: Record<Kind, string> = {
          input: 'inputPricePer1M',
          output: 'outputPricePer1M',
          cachedInput: 'cachedInputPricePer1M',
          cacheWrite: 'cacheWritePricePer1M',
          cacheWrite1h: 'cacheWrite1hPricePer1M',
          reasoning: 'reasoningPricePer1M',
        };
        // Decimal strings: exact, whatever the size.
        for (const [kind, value] of Object.entries(prices) as [Kind, bigint | undefined][]) {
          if (value !== undefined) body[field[kind]] = (Number(value / 1_000_000n) + '.' + (value % 1_000_000n).toString().padStart(6, '0'));
        }
        const put = await request(ctx.app).put(`/api/models/${modelId}`).set('Authorization', admin.auth).send(body);
        expect(put.status).toBe(201);
        const res = await request(ctx.app)
          .post('/api/credits/calculate')
          .set('Authorization', user.auth)
          .send({ modelId, ...asTokens(counts) });
        const expected = modelCost(prices, counts);
        if (expected > 1_000_000_000n * 1_000_000n) {
          expect(res.status).toBe(400);
          return;
        }
        expect(res.status).toBe(200);
        expect(res.body.credits).toBe(credits(expected));
      }),
      { numRuns: 60 },
    );
  });
});
