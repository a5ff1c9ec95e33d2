import type { Database } from '../db/database';
import { AppError } from '../lib/errors';
import { costOfTokens, formatCredits, fromDb, MAX_REQUEST_COST_MICRO, type Micro } from '../lib/money';

export interface ModelPrice {
  modelId: string;
  priceVersion: number;
  inputPer1M: Micro;
  outputPer1M: Micro;
  cachedInputPer1M: Micro;
  effectiveFrom: Date;
}

export interface NewPrice {
  inputPer1M: Micro;
  outputPer1M: Micro;
  cachedInputPer1M: Micro;
}

export interface TokenCounts {
  inputTokens: number;
  outputTokens: number;
  /** Part of the input served from the provider's prompt cache, billed at the cached price. */
  cachedInputTokens?: number;
}

export interface Cost {
  total: Micro;
  breakdown: { input: Micro; cachedInput: Micro; output: Micro };
}

interface PriceRow {
  model_id: string;
  price_version: number;
  input_price_per_1m: string;
  output_price_per_1m: string;
  cached_input_price_per_1m: string;
  effective_from: Date;
}

const toPrice = (row: PriceRow): ModelPrice => ({
  modelId: row.model_id,
  priceVersion: row.price_version,
  inputPer1M: fromDb(row.input_price_per_1m),
  outputPer1M: fromDb(row.output_price_per_1m),
  cachedInputPer1M: fromDb(row.cached_input_price_per_1m),
  effectiveFrom: row.effective_from,
});

/**
 * Model prices, versioned. The current version of each model is cached per process for a short TTL
 * (prices change rarely and every request needs one); a pinned version never changes, so it is cached
 * without expiry.
 */
export class PriceService {
  private currentCache: { loadedAt: number; byModel: Map<string, ModelPrice> } | null = null;
  private readonly versions = new Map<string, ModelPrice>();

  constructor(
    private readonly db: Database,
    private readonly cacheTtlMs: number,
  ) {}

  /** Current price of every model. */
  async list(): Promise<ModelPrice[]> {
    return [...(await this.currentPrices()).values()].sort((a, b) => a.modelId.localeCompare(b.modelId));
  }

  /** Current price of a model; UNKNOWN_MODEL when it has none (never billed at zero). */
  async current(modelId: string): Promise<ModelPrice> {
    const price = (await this.currentPrices()).get(modelId);
    if (!price) throw unknownModel(modelId);
    return price;
  }

  /** A specific version (a session is billed at the version it started with). */
  async version(modelId: string, priceVersion: number): Promise<ModelPrice> {
    const key = `${modelId}@${priceVersion}`;
    const cached = this.versions.get(key);
    if (cached) return cached;
    const [row] = await this.db.query<PriceRow>(
      `SELECT * FROM model_prices WHERE model_id = $1 AND price_version = $2`,
      [modelId, priceVersion],
    );
    if (!row) throw unknownModel(modelId);
    const price = toPrice(row);
    this.versions.set(key, price);
    return price;
  }

  /**
   * Adds a new price version for a model, effective now; earlier versions stay (sessions keep theirs).
   * A model without any version is created this way. Concurrent changes to one model are serialized by
   * a transaction-scoped advisory lock, so versions are gapless. Other instances see the change when
   * their cache expires (PRICE_CACHE_TTL_MS).
   */
  async setPrice(modelId: string, prices: NewPrice, actorId: string): Promise<{ price: ModelPrice; created: boolean }> {
    const row = await this.db.transaction(async (tx) => {
      await this.db.query(`SELECT pg_advisory_xact_lock(hashtext('model_prices'), hashtext($1)) AS locked`, [modelId], tx);
      const [inserted] = await this.db.query<PriceRow>(
        `INSERT INTO model_prices (model_id, price_version, input_price_per_1m, output_price_per_1m,
                                   cached_input_price_per_1m, effective_from, created_by)
         SELECT $1, coalesce(max(price_version), 0) + 1, $2, $3, $4, now(), $5
           FROM model_prices WHERE model_id = $1
         RETURNING *`,
        [modelId, prices.inputPer1M.toString(), prices.outputPer1M.toString(), prices.cachedInputPer1M.toString(), actorId],
        tx,
      );
      return inserted;
    });
    this.invalidate();
    const price = toPrice(row);
    this.versions.set(`${modelId}@${price.priceVersion}`, price);
    return { price, created: price.priceVersion === 1 };
  }

  /** Forgets cached current prices (after a price change in this process). */
  invalidate(): void {
    this.currentCache = null;
  }

  private async currentPrices(): Promise<Map<string, ModelPrice>> {
    if (this.currentCache && Date.now() - this.currentCache.loadedAt < this.cacheTtlMs) return this.currentCache.byModel;
    const rows = await this.db.query<PriceRow>(
      `SELECT DISTINCT ON (model_id) * FROM model_prices
        WHERE effective_from <= now()
        ORDER BY model_id, price_version DESC`,
    );
    const byModel = new Map(rows.map((row) => [row.model_id, toPrice(row)]));
    this.currentCache = { loadedAt: Date.now(), byModel };
    return byModel;
  }
}

export const unknownModel = (modelId: string) =>
  new AppError('UNKNOWN_MODEL', `Model "${modelId}" has no price`, { modelId });

/**
 * Cost of tokens at a price, in micro-credits. Each part is exact; the total is the sum of the exact
 * parts rounded up once, so the total never exceeds the true cost by a micro-credit or more.
 * Uncached input = inputTokens - cachedInputTokens (cached tokens are part of the input).
 */
export function costAt(price: ModelPrice, tokens: TokenCounts): Cost {
  const cached = BigInt(tokens.cachedInputTokens ?? 0);
  const uncached = BigInt(tokens.inputTokens) - cached;
  if (uncached < 0n) throw new AppError('VALIDATION_ERROR', 'cachedInputTokens cannot exceed inputTokens', {
    problems: [{ location: 'body', path: 'cachedInputTokens', message: 'must not exceed the input tokens' }],
  });
  const exact = uncached * price.inputPer1M + cached * price.cachedInputPer1M + BigInt(tokens.outputTokens) * price.outputPer1M;
  return {
    total: (exact + 999_999n) / 1_000_000n,
    breakdown: {
      input: costOfTokens(uncached, price.inputPer1M),
      cachedInput: costOfTokens(cached, price.cachedInputPer1M),
      output: costOfTokens(BigInt(tokens.outputTokens), price.outputPer1M),
    },
  };
}

/**
 * One request's cost is at most 1,000,000,000 credits (API.md, Conventions "Bounds"): what keeps every
 * per-record amount far inside bigint and makes rollup growth per request bounded. Above it the request is a
 * VALIDATION_ERROR naming the token fields that produced the cost; nothing is written.
 */
export function assertRequestCost(cost: Micro, fields: string[]): void {
  if (cost <= MAX_REQUEST_COST_MICRO) return;
  const message = `the cost of these tokens (${formatCredits(cost)} credits) exceeds the limit of 1000000000 credits for one request`;
  throw new AppError('VALIDATION_ERROR', 'The request is not valid', {
    problems: fields.map((path) => ({ location: 'body', path, message })),
  });
}
