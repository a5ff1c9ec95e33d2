import {
  creditsInput,
  creditsOutput,
  modelId,
  NOT_YEAR_ZERO,
  page,
  paginationQuery,
  timestamp,
  tokenCount,
  userId,
  z,
} from './common';
import { countFieldsGiven, partFields, refineCounts, usageOf } from '../metering/body';
import { emptyUsage } from '../metering/tokens';

/** How far back a late usage event may be recorded, and how far ahead of the clock (skew) it may lie. */
export const OCCURRED_AT_MAX_AGE_DAYS = 35;
export const OCCURRED_AT_MAX_SKEW_MS = 5 * 60_000;
const WHOLES = { input: 'inputTokens', output: 'outputTokens' };

/** Largest metadata object accepted on a usage record: serialized size and number of top-level keys. */
export const METADATA_MAX_BYTES = 4096;
export const METADATA_MAX_KEYS = 50;
/** Longest range the statistics accept, in UTC days (both ends included): a leap year fits. */
export const STATS_MAX_DAYS = 366;
/** Range of the statistics when the caller gives neither end: the last 30 UTC days, today included. */
export const STATS_DEFAULT_DAYS = 30;

const DAY_MS = 86_400_000;

/** A service or operation name: what statistics group by, so kept to a tidy identifier. */
const label = z
  .string()
  .min(1)
  .max(100)
  .regex(/^[A-Za-z0-9._:/-]+$/, 'letters, digits and . _ : / - only');

const metadata = z
  .record(z.string(), z.unknown())
  .superRefine((value, ctx) => {
    const keys = Object.keys(value).length;
    if (keys > METADATA_MAX_KEYS) ctx.addIssue({ code: 'custom', message: `must have at most ${METADATA_MAX_KEYS} keys` });
    const bytes = Buffer.byteLength(JSON.stringify(value), 'utf8');
    if (bytes > METADATA_MAX_BYTES) {
      ctx.addIssue({ code: 'custom', message: `must be at most ${METADATA_MAX_BYTES} bytes as JSON (is ${bytes})` });
    }
  })
  .openapi({
    description: `A JSON object stored with the record: at most ${METADATA_MAX_KEYS} keys and ${METADATA_MAX_BYTES} bytes serialized`,
    example: { requestId: 'req_123', feature: 'summarize' },
  });

/**
 * POST /api/usage/record. Either `credits` (the cost, given directly) or `modelId` + `inputTokens` +
 * `outputTokens` (+ `cachedInputTokens`), never both and never neither.
 */
export const recordUsageBody = z
  .object({
    service: label.openapi({ example: 'chat' }),
    operation: label.openapi({ example: 'completion' }),
    credits: creditsInput.optional(),
    modelId: modelId.optional(),
    inputTokens: tokenCount.optional().openapi({ description: 'All prompt tokens (cached and cache-write tokens included)' }),
    outputTokens: tokenCount.optional().openapi({ description: 'All completion tokens (reasoning tokens included)' }),
    ...partFields,
    occurredAt: z.iso
      .datetime({ offset: true })
      .superRefine((value, ctx) => {
        const ms = Date.parse(value);
        const now = Date.now();
        if (ms < now - OCCURRED_AT_MAX_AGE_DAYS * 86_400_000) {
          ctx.addIssue({ code: 'custom', message: `must be at most ${OCCURRED_AT_MAX_AGE_DAYS} days ago` });
        } else if (ms > now + OCCURRED_AT_MAX_SKEW_MS) {
          ctx.addIssue({ code: 'custom', message: 'must not be later than now (plus 5 minutes of clock skew)' });
        }
      })
      .optional()
      .openapi({
        description: `When the usage happened (default now; at most ${OCCURRED_AT_MAX_AGE_DAYS} days ago): priced at the version in effect then and counted on that day`,
      }),
    metadata: metadata.optional(),
    userId: userId.optional().openapi({ description: 'Whose usage this is (supervisor and admin only; default: the caller)' }),
  })
  .strict()
  .superRefine((body, ctx) => {
    const tokenFields = [
      ...(body.modelId !== undefined ? ['modelId'] : []),
      ...countFieldsGiven(body, WHOLES),
      ...(body.providerUsage !== undefined ? ['providerUsage'] : []),
    ];
    if (body.credits !== undefined) {
      if (tokenFields.length > 0) {
        ctx.addIssue({
          code: 'custom',
          path: ['credits'],
          message: `give either credits or modelId with token counts, not both (also got ${tokenFields.join(', ')})`,
        });
      }
      return;
    }
    if (tokenFields.length === 0) {
      ctx.addIssue({ code: 'custom', path: ['credits'], message: 'give either credits or modelId with inputTokens and outputTokens' });
      return;
    }
    const required = body.providerUsage === undefined ? (['modelId', 'inputTokens', 'outputTokens'] as const) : (['modelId'] as const);
    for (const field of required) {
      if (body[field] === undefined) ctx.addIssue({ code: 'custom', path: [field], message: 'is required when credits are computed from tokens' });
    }
    refineCounts(body, ctx, WHOLES);
  })
  .openapi('RecordUsageRequest');
export type RecordUsageBody = z.infer<typeof recordUsageBody>;

/** The token counts of a validated record body (all zero for a credits-only record). */
export const recordTokensOf = (body: RecordUsageBody) => (body.credits !== undefined ? emptyUsage() : usageOf(body, WHOLES));

export const usageRecord = z
  .object({
    id: z.string(),
    userId: z.string(),
    sessionId: z.string().nullable(),
    service: z.string(),
    operation: z.string(),
    modelId: z.string().nullable(),
    priceVersion: z.number().int().nullable(),
    inputTokens: z.number().int(),
    outputTokens: z.number().int(),
    cachedInputTokens: z.number().int(),
    cacheWriteTokens: z.number().int(),
    cacheWrite1hTokens: z.number().int(),
    reasoningTokens: z.number().int(),
    credits: creditsOutput,
    chargedCredits: creditsOutput,
    unpaidCredits: creditsOutput,
    refundedCredits: creditsOutput.openapi({ description: 'Refunded so far (unpaid forgiven + charged returned); credits = charged + unpaid + refunded' }),
    metadata: z.record(z.string(), z.unknown()).nullable(),
    recordedBy: z.string().nullable(),
    createdAt: timestamp.openapi({ description: 'When the usage happened (the same as occurredAt)' }),
    occurredAt: timestamp.openapi({ description: 'When the usage happened: the day statistics count it on' }),
    recordedAt: timestamp.openapi({ description: 'When the service wrote the record' }),
  })
  .openapi('UsageRecord');

export const recordUsageResponse = z
  .object({
    usageRecord,
    chargedCredits: creditsOutput,
    unpaidCredits: creditsOutput.openapi({ description: 'The part of the cost the available credits did not cover' }),
    availableCredits: creditsOutput.openapi({ description: 'Available credits after the charge' }),
  })
  .openapi('RecordUsageResponse');

/**
 * One end of a range: a date (`2026-11-24`) or a date-time with `Z` or an offset. `text` is what
 * PostgreSQL gets (microseconds and offsets preserved); a date as `from` is the start of that UTC day,
 * as `to` its last microsecond.
 */
export interface RangeBound {
  text: string;
  ms: number;
  dateOnly: boolean;
}
const bound = (end: 'from' | 'to') =>
  z
    .union([z.iso.date(), z.iso.datetime({ offset: true })])
    .refine(...NOT_YEAR_ZERO)
    .transform((value): RangeBound => {
      if (value.length === 10) {
        const text = end === 'from' ? `${value}T00:00:00Z` : `${value}T23:59:59.999999Z`;
        return { text, ms: Date.parse(end === 'from' ? text : `${value}T23:59:59.999Z`), dateOnly: true };
      }
      return { text: value, ms: Date.parse(value), dateOnly: false };
    })
    .openapi({
      type: 'string',
      description: 'An ISO 8601 date (a whole UTC day) or date-time with Z or an offset',
      example: end === 'from' ? '2026-11-01' : '2026-11-24T23:59:59Z',
    });

const utcDay = (ms: number) => new Date(ms).toISOString().slice(0, 10);

/** The UTC days a statistics request covers, both included. */
export interface DayRange {
  fromDay: string;
  toDay: string;
}

/** ?from&to for statistics, as validated (RangeBound each); resolveDayRange turns them into UTC days. */
export interface StatsQuery {
  from?: RangeBound;
  to?: RangeBound;
}

/**
 * The UTC days a statistics request covers: from/to truncated to UTC days (the rollups are daily),
 * from <= to, at most 366 days, default the last 30 days. Only `from`: up to today. Only `to`: the 30 days
 * ending then. Returns the problem instead when the range is not acceptable.
 */
export function resolveDayRange(query: StatsQuery, now = Date.now()): { range: DayRange } | { path: 'from' | 'to'; message: string } {
  const toMs = query.to?.ms ?? (query.from ? Math.max(now, query.from.ms) : now);
  const fromMs = query.from?.ms ?? Date.parse(`${utcDay(toMs)}T00:00:00Z`) - (STATS_DEFAULT_DAYS - 1) * DAY_MS;
  if (fromMs > toMs) return { path: 'from', message: 'must not be after to' };
  const fromDay = utcDay(fromMs);
  const toDay = utcDay(toMs);
  const days = (Date.parse(toDay) - Date.parse(fromDay)) / DAY_MS + 1;
  if (days > STATS_MAX_DAYS) return { path: 'to', message: `the range covers ${days} UTC days; at most ${STATS_MAX_DAYS} are allowed` };
  return { range: { fromDay, toDay } };
}

/** ?from&to for statistics (an object schema, so the OpenAPI document can list the parameters). */
export const statsQuery = z
  .object({ from: bound('from').optional(), to: bound('to').optional() })
  .strict()
  .superRefine((query, ctx) => {
    const resolved = resolveDayRange(query);
    if ('path' in resolved) ctx.addIssue({ code: 'custom', path: [resolved.path], message: resolved.message });
  });

export const statsParams = z.object({ userId }).strict();

/** ?from&to&limit&cursor&format&userId for the record list (exact instants, no day truncation, no span limit). */
export const recordsQuery = paginationQuery
  .extend({
    from: bound('from').optional(),
    to: bound('to').optional(),
    format: z.enum(['json', 'csv']).default('json').openapi({ description: 'csv: the whole range (after cursor, when given) as a CSV download; limit is ignored' }),
    userId: userId.optional().openapi({ description: 'Whose records (supervisor and admin only; default: the caller)' }),
  })
  .strict()
  .superRefine((query, ctx) => {
    if (query.from && query.to && query.from.ms > query.to.ms) {
      ctx.addIssue({ code: 'custom', path: ['from'], message: 'must not be after to' });
    }
  });
export type RecordsQuery = z.infer<typeof recordsQuery>;

export const recordsPage = page(usageRecord).openapi('UsageRecordPage');

const tokenTotals = {
  inputTokens: z.number().int(),
  outputTokens: z.number().int(),
  cachedInputTokens: z.number().int(),
  cacheWriteTokens: z.number().int(),
  cacheWrite1hTokens: z.number().int(),
  reasoningTokens: z.number().int(),
};
const usageTotals = z.object({
  requests: z.number().int(),
  credits: creditsOutput.openapi({ description: 'Usage net of refunds' }),
  unpaidCredits: creditsOutput,
  refundedCredits: creditsOutput.openapi({ description: 'Refunded (forgiven or returned); not included in credits' }),
  ...tokenTotals,
});
const byModelItem = z.object({
  modelId: z.string().nullable().openapi({ description: 'null for usage recorded as credits without a model' }),
  requests: z.number().int(),
  credits: creditsOutput,
  unpaidCredits: creditsOutput,
  refundedCredits: creditsOutput.openapi({ description: 'Refunded (forgiven or returned); not included in credits' }),
  ...tokenTotals,
});
const dailyItem = z.object({
  date: z.string().openapi({ format: 'date', example: '2026-11-24' }),
  requests: z.number().int(),
  credits: creditsOutput,
});
const rangeFields = {
  from: timestamp.openapi({ description: 'Start of the first UTC day covered', example: '2026-10-26T00:00:00.000Z' }),
  to: timestamp.openapi({ description: 'End of the last UTC day covered', example: '2026-11-24T23:59:59.999Z' }),
};

export const userStatsResponse = z
  .object({
    userId: z.string(),
    ...rangeFields,
    totals: usageTotals,
    byService: z.array(
      z.object({
        service: z.string(),
        operation: z.string(),
        requests: z.number().int(),
        credits: creditsOutput,
        unpaidCredits: creditsOutput,
        refundedCredits: creditsOutput.openapi({ description: 'Refunded (forgiven or returned); not included in credits' }),
        ...tokenTotals,
      }),
    ),
    byModel: z.array(byModelItem),
    daily: z.array(dailyItem).openapi({ description: 'Every UTC day of the range, oldest first, zeros included' }),
  })
  .openapi('UsageStats');

export const systemStatsResponse = z
  .object({
    ...rangeFields,
    totals: usageTotals.extend({ activeUsers: z.number().int().openapi({ description: 'Users with usage in the range' }) }),
    credits: z
      .object({
        allocated: creditsOutput.openapi({ description: 'Every credit ever allocated' }),
        available: creditsOutput.openapi({ description: 'Remaining in unexpired lots' }),
        reserved: creditsOutput.openapi({ description: 'Held by active sessions' }),
        consumed: creditsOutput.openapi({ description: 'Paid usage: recorded credits minus unpaid' }),
        expired: creditsOutput.openapi({ description: 'Removed from lots by expiry' }),
        unpaid: creditsOutput.openapi({ description: 'Recorded usage that no credits covered' }),
        refunded: creditsOutput.openapi({ description: 'Usage refunded (forgiven or returned to lots); not in consumed or unpaid' }),
      })
      .openapi({ description: 'The whole system as of now (not limited to from/to)' }),
    sessions: z
      .object({ active: z.number().int(), completed: z.number().int(), aborted: z.number().int(), expired: z.number().int() })
      .openapi({ description: 'Streaming sessions by status as of now (not limited to from/to)' }),
    topUsers: z.array(z.object({ userId: z.string(), requests: z.number().int(), credits: creditsOutput, unpaidCredits: creditsOutput })),
    byModel: z.array(byModelItem),
    daily: z.array(dailyItem),
  })
  .openapi('SystemUsageStats');

/** Number of users in topUsers. */
export const TOP_USERS = 10;
