import type { Database } from '../db/database';
import { AppError } from '../lib/errors';
import { costOfTokens, formatCredits, fromDb, MAX_REQUEST_COST_MICRO, type Micro } from '../lib/money';
import type { TokenUsage } from '../metering/tokens';
import { decodeKeyCursor, encodeCursor, type Page } from '../schemas/common';

/**
 * One price version of a model, in micro-credits per 1M tokens of each kind. A kind without its own
 * price (null) is billed at its parent's: cacheWrite1h -> cacheWrite -> input, reasoning -> output
 * (cachedInput already stores input's price when none was given).
 */
export interface ModelPrice {
  modelId: string;
  priceVersion: number;
  inputPer1M: Micro;
  outputPer1M: Micro;
  cachedInputPer1M: Micro;
  cacheWritePer1M: Micro | null;
  cacheWrite1hPer1M: Micro | null;
  reasoningPer1M: Micro | null;
  effectiveFrom: Date;
  createdAt: Date;
}

export interface NewPrice {
  inputPer1M: Micro;
  outputPer1M: Micro;
  cachedInputPer1M: Micro;
  cacheWritePer1M?: Micro | null;
  cacheWrite1hPer1M?: Micro | null;
  reasoningPer1M?: Micro | null;
}

/** Token kinds in the order they are priced and reported. */
export const TOKEN_KINDS = ['input', 'cachedInput', 'cacheWrite', 'cacheWrite1h', 'output', 'reasoning'] as const;
export type TokenKind = (typeof TOKEN_KINDS)[number];
export type PerKind<T> = Record<TokenKind, T>;

/** Token counts to price: the two wholes are required, parts default to 0 (see src/metering/tokens.ts). */
export type TokenCounts = Pick<TokenUsage, 'inputTokens' | 'outputTokens'> &
  Partial<Omit<TokenUsage, 'inputTokens' | 'outputTokens'>>;

export interface Cost {
  total: Micro;
  /** Each kind's cost, rounded up on its own; `input` is the uncached input, `output` the non-reasoning output. */
  breakdown: PerKind<Micro>;
  /** Tokens billed per kind (parts taken out of their wholes). */
  tokens: PerKind<bigint>;
}

interface PriceRow {
  model_id: string;
  price_version: number;
  input_price_per_1m: string;
  output_price_per_1m: string;
  cached_input_price_per_1m: string;
  cache_write_price_per_1m: string | null;
  cache_write_1h_price_per_1m: string | null;
  reasoning_price_per_1m: string | null;
  effective_from: Date;
  created_at?: Date;
}

const nullable = (value: string | null) => (value === null ? null : fromDb(value));

const toPrice = (row: PriceRow): ModelPrice => ({
  modelId: row.model_id,
  priceVersion: row.price_version,
  inputPer1M: fromDb(row.input_price_per_1m),
  outputPer1M: fromDb(row.output_price_per_1m),
  cachedInputPer1M: fromDb(row.cached_input_price_per_1m),
  cacheWritePer1M: nullable(row.cache_write_price_per_1m),
  cacheWrite1hPer1M: nullable(row.cache_write_1h_price_per_1m),
  reasoningPer1M: nullable(row.reasoning_price_per_1m),
  effectiveFrom: row.effective_from,
  createdAt: row.created_at ?? row.effective_from,
});

/**
 * Model prices, versioned and effective-dated. Every version of every model is cached per process for a
 * short TTL (prices change rarely, every request needs one, and a version that takes effect later must be
 * picked up by the clock alone, without a reload); the version in effect at an instant is the one with
 * the latest `effectiveFrom` at or before it (ties: the higher version).
 */
export class PriceService {
  private cache: { loadedAt: number; byModel: Map<string, ModelPrice[]> } | null = null;

  constructor(
    private readonly db: Database,
    private readonly cacheTtlMs: number,
  ) {}

  /** The version of every model in effect now. */
  async list(): Promise<ModelPrice[]> {
    const now = new Date();
    const out: ModelPrice[] = [];
    for (const versions of (await this.all()).values()) {
      const price = inEffect(versions, now);
      if (price) out.push(price);
    }
    return out.sort((a, b) => a.modelId.localeCompare(b.modelId));
  }

  /** Every version of a model, oldest first; NOT_FOUND for a model without any. */
  async versions(modelId: string): Promise<ModelPrice[]> {
    const versions = (await this.all()).get(modelId);
    if (!versions) throw new AppError('NOT_FOUND', `Model "${modelId}" has no price`, { modelId });
    return [...versions].sort((a, b) => a.priceVersion - b.priceVersion);
  }

  /**
   * One page of a model's versions, oldest first (the cursor names the last version shown), and the version
   * in effect now (of all of them, not only this page's).
   */
  async versionPage(modelId: string, page: Page): Promise<{ data: ModelPrice[]; current: ModelPrice | undefined; nextCursor: string | null }> {
    const versions = await this.versions(modelId);
    const after = decodeKeyCursor(page.cursor, (key) => /^\d{1,10}$/.test(key) && Number(key) <= 2 ** 31 - 1);
    const rest = after === null ? versions : versions.filter((price) => price.priceVersion > Number(after));
    const data = rest.slice(0, page.limit);
    const nextCursor = rest.length > page.limit ? encodeCursor([String(data[data.length - 1].priceVersion)]) : null;
    return { data, current: inEffect(versions, new Date()), nextCursor };
  }

  /** The version in effect now; UNKNOWN_MODEL when there is none (never billed at zero). */
  async current(modelId: string): Promise<ModelPrice> {
    return this.at(modelId, new Date());
  }

  /**
   * The version in effect at an instant (a late usage event is priced as of when it happened). An instant
   * before the model's first version takes effect is priced at that first version.
   */
  async at(modelId: string, when: Date): Promise<ModelPrice> {
    const versions = (await this.all()).get(modelId);
    if (!versions) throw unknownModel(modelId);
    const price = inEffect(versions, when) ?? versions.reduce((a, b) => (firstBefore(a, b) ? a : b));
    return price;
  }

  /** A specific version (a session is billed at the version it started with). */
  async version(modelId: string, priceVersion: number): Promise<ModelPrice> {
    let price = (await this.all()).get(modelId)?.find((p) => p.priceVersion === priceVersion);
    if (!price) {
      // Made by another instance after our cache was loaded.
      const [row] = await this.db.query<PriceRow>(
        `SELECT * FROM model_prices WHERE model_id = $1 AND price_version = $2`,
        [modelId, priceVersion],
      );
      if (!row) throw unknownModel(modelId);
      price = toPrice(row);
    }
    return price;
  }

  /**
   * Adds a new price version for a model, taking effect at `effectiveFrom` (default: now); earlier versions
   * stay (sessions and records keep theirs). A model without any version is created this way. Concurrent
   * changes to one model are serialized by a transaction-scoped advisory lock, so versions are gapless.
   * Other instances see the change when their cache expires (PRICE_CACHE_TTL_MS).
   */
  async setPrice(
    modelId: string,
    prices: NewPrice,
    actorId: string,
    effectiveFrom?: Date,
  ): Promise<{ price: ModelPrice; created: boolean }> {
    const row = await this.db.transaction(async (tx) => {
      await this.db.query(`SELECT pg_advisory_xact_lock(hashtext('model_prices'), hashtext($1)) AS locked`, [modelId], tx);
      const [inserted] = await this.db.query<PriceRow>(
        `INSERT INTO model_prices (model_id, price_version, input_price_per_1m, output_price_per_1m,
                                   cached_input_price_per_1m, cache_write_price_per_1m, cache_write_1h_price_per_1m,
                                   reasoning_price_per_1m, effective_from, created_by)
         SELECT $1, coalesce(max(price_version), 0) + 1, $2, $3, $4, $5, $6, $7, greatest(coalesce($8::timestamptz, now()), now()), $9
           FROM model_prices WHERE model_id = $1
         RETURNING *, now() AS created_at`,
        [modelId, ...priceBind(prices), effectiveFrom ?? null, actorId],
        tx,
      );
      return inserted;
    });
    this.invalidate();
    const price = toPrice(row);
    return { price, created: price.priceVersion === 1 };
  }

  /**
   * Imports a price list: a new version (effective now) for each model whose prices differ from its latest
   * version, nothing for the others, so importing the same list twice creates nothing. One transaction,
   * with the same per-model advisory locks as setPrice (taken in model order, so imports never deadlock).
   * dryRun reports what would be created and writes nothing.
   */
  async importPrices(
    entries: { modelId: string; price: NewPrice }[],
    actorId: string,
    dryRun: boolean,
  ): Promise<{ created: { modelId: string; priceVersion: number }[]; unchanged: number }> {
    if (entries.length === 0) return { created: [], unchanged: 0 };
    const rows = entries.map(({ modelId, price }) => {
      const [input, output, cached, cacheWrite, cacheWrite1h, reasoning] = priceBind(price);
      return { model_id: modelId, input, output, cached, cache_write: cacheWrite, cache_write_1h: cacheWrite1h, reasoning };
    });
    const created = await this.db.transaction(async (tx) => {
      await this.db.query(
        `SELECT count(pg_advisory_xact_lock(hashtext('model_prices'), hashtext(m))) AS locked
           FROM (SELECT m FROM unnest($1::text[]) AS m ORDER BY m) AS ordered`,
        [rows.map((r) => r.model_id)],
        tx,
      );
      const changed = `
        WITH input AS (
          SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(model_id text, input bigint, output bigint, cached bigint,
                                                           cache_write bigint, cache_write_1h bigint, reasoning bigint)),
        latest AS (
          SELECT DISTINCT ON (model_id) * FROM model_prices WHERE model_id IN (SELECT model_id FROM input)
           ORDER BY model_id, price_version DESC)
        SELECT i.*, coalesce(l.price_version, 0) + 1 AS price_version
          FROM input i LEFT JOIN latest l USING (model_id)
         WHERE l.model_id IS NULL
            OR (l.input_price_per_1m, l.output_price_per_1m, l.cached_input_price_per_1m, l.cache_write_price_per_1m,
                l.cache_write_1h_price_per_1m, l.reasoning_price_per_1m)
               IS DISTINCT FROM (i.input, i.output, i.cached, i.cache_write, i.cache_write_1h, i.reasoning)`;
      const sql = dryRun
        ? `SELECT model_id, price_version FROM (${changed}) c ORDER BY model_id`
        : `INSERT INTO model_prices (model_id, price_version, input_price_per_1m, output_price_per_1m, cached_input_price_per_1m,
                                     cache_write_price_per_1m, cache_write_1h_price_per_1m, reasoning_price_per_1m, created_by)
           SELECT model_id, price_version, input, output, cached, cache_write, cache_write_1h, reasoning, $2
             FROM (${changed}) c ORDER BY model_id
           RETURNING model_id, price_version`;
      return this.db.query<{ model_id: string; price_version: number }>(sql, dryRun ? [JSON.stringify(rows)] : [JSON.stringify(rows), actorId], tx);
    });
    if (!dryRun && created.length > 0) this.invalidate();
    return {
      created: created.map((r) => ({ modelId: r.model_id, priceVersion: r.price_version })).sort((a, b) => a.modelId.localeCompare(b.modelId)),
      unchanged: entries.length - created.length,
    };
  }

  /** Forgets cached prices (after a price change in this process). */
  invalidate(): void {
    this.cache = null;
  }

  private async all(): Promise<Map<string, ModelPrice[]>> {
    if (this.cache && Date.now() - this.cache.loadedAt < this.cacheTtlMs) return this.cache.byModel;
    const loadedAt = Date.now();
    const rows = await this.db.query<PriceRow>(`SELECT * FROM model_prices ORDER BY model_id, price_version`);
    const byModel = new Map<string, ModelPrice[]>();
    for (const row of rows) {
      const list = byModel.get(row.model_id) ?? [];
      list.push(toPrice(row));
      byModel.set(row.model_id, list);
    }
    this.cache = { loadedAt, byModel };
    return byModel;
  }
}

/** The bind values of a price's six kinds, in model_prices column order. */
export const priceBind = (prices: NewPrice): (string | null)[] => [
  prices.inputPer1M.toString(),
  prices.outputPer1M.toString(),
  prices.cachedInputPer1M.toString(),
  prices.cacheWritePer1M?.toString() ?? null,
  prices.cacheWrite1hPer1M?.toString() ?? null,
  prices.reasoningPer1M?.toString() ?? null,
];

const firstBefore = (a: ModelPrice, b: ModelPrice) =>
  a.effectiveFrom.getTime() < b.effectiveFrom.getTime() ||
  (a.effectiveFrom.getTime() === b.effectiveFrom.getTime() && a.priceVersion < b.priceVersion);

/** The version in effect at `when`: latest effectiveFrom at or before it, ties to the higher version. */
export function inEffect(versions: ModelPrice[], when: Date): ModelPrice | undefined {
  let best: ModelPrice | undefined;
  for (const price of versions) {
    if (price.effectiveFrom.getTime() > when.getTime()) continue;
    if (!best || firstBefore(best, price)) best = price;
  }
  return best;
}

export const unknownModel = (modelId: string) =>
  new AppError('UNKNOWN_MODEL', `Model "${modelId}" has no price`, { modelId });

/** Each kind's price with the parent fallback applied. */
export function kindPrices(price: ModelPrice): PerKind<Micro> {
  const cacheWrite = price.cacheWritePer1M ?? price.inputPer1M;
  return {
    input: price.inputPer1M,
    cachedInput: price.cachedInputPer1M,
    cacheWrite,
    cacheWrite1h: price.cacheWrite1hPer1M ?? cacheWrite,
    output: price.outputPer1M,
    reasoning: price.reasoningPer1M ?? price.outputPer1M,
  };
}

/**
 * THE pricing function: cost of tokens at a price version, in micro-credits. Parts are taken out of their
 * wholes (uncached input = input - cache reads - cache writes; non-reasoning output = output - reasoning),
 * each kind is priced at its own price (or its parent's), and the exact sum is rounded up once, so the
 * total never exceeds the true cost by a micro-credit or more. Parts exceeding their whole are a VALIDATION_ERROR.
 */
export function costAt(price: ModelPrice, counts: TokenCounts): Cost {
  const cached = BigInt(counts.cachedInputTokens ?? 0);
  const cacheWrite = BigInt(counts.cacheWriteTokens ?? 0);
  const cacheWrite1h = BigInt(counts.cacheWrite1hTokens ?? 0);
  const reasoning = BigInt(counts.reasoningTokens ?? 0);
  const tokens: PerKind<bigint> = {
    input: BigInt(counts.inputTokens) - cached - cacheWrite - cacheWrite1h,
    cachedInput: cached,
    cacheWrite,
    cacheWrite1h,
    output: BigInt(counts.outputTokens) - reasoning,
    reasoning,
  };
  if (tokens.input < 0n) throw invalid('cachedInputTokens', 'cachedInputTokens + cacheWriteTokens + cacheWrite1hTokens must not exceed the input tokens');
  if (tokens.output < 0n) throw invalid('reasoningTokens', 'must not exceed the output tokens');
  const prices = kindPrices(price);
  let exact = 0n;
  const breakdown = {} as PerKind<Micro>;
  for (const kind of TOKEN_KINDS) {
    exact += tokens[kind] * prices[kind];
    breakdown[kind] = costOfTokens(tokens[kind], prices[kind]);
  }
  // The bound on one request's cost is checked by the callers (assertRequestCost), which name their fields.
  const total = (exact + 999_999n) / 1_000_000n;
  return { total, breakdown, tokens };
}

const invalid = (path: string, message: string) =>
  new AppError('VALIDATION_ERROR', 'The request is not valid', { problems: [{ location: 'body', path, message }] });

/**
 * One request's cost is at most 1,000,000,000 credits (API.md, Conventions "Bounds"): what keeps every
 * per-record amount far inside bigint and makes rollup growth per request bounded. Above it the request is a
 * VALIDATION_ERROR naming the token fields that produced the cost; nothing is written. (costAt checks the
 * same bound for costs computed from tokens; this also covers amounts given in credits.)
 */
export function assertRequestCost(cost: Micro, fields: string[]): void {
  if (cost <= MAX_REQUEST_COST_MICRO) return;
  const message = `the cost of these tokens (${formatCredits(cost)} credits) exceeds the limit of 1000000000 credits for one request`;
  throw new AppError('VALIDATION_ERROR', 'The request is not valid', {
    problems: fields.map((path) => ({ location: 'body', path, message })),
  });
}
