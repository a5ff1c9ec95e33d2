import { toCredits } from '../lib/money';
import { countFieldsGiven, partFields, refineCounts, usageOf } from '../metering/body';
import { budgetExceededDetails, budgetStatusSchema, toBudgetStatusJson, type BudgetStatusRow } from './budget.schemas';
import {
  creditsOutput,
  modelId,
  page,
  paginationQuery,
  positiveCreditsInput,
  timestamp,
  tokenCount,
  userId,
  z,
} from './common';

/** Credits expiring within this many days are reported in `expiringSoon`. */
export const EXPIRING_SOON_DAYS = 7;

// ---------- requests ----------

export const userIdParams = z.object({ userId });

const WHOLES = { input: 'inputTokens', output: 'outputTokens' };

/**
 * Either `{credits}` or `{modelId, inputTokens, outputTokens[, parts]}` or `{modelId, providerUsage}`.
 * Parts (cachedInputTokens, cacheWriteTokens, cacheWrite1hTokens, reasoningTokens) are inside their wholes.
 */
export const checkBody = z
  .object({
    credits: positiveCreditsInput.optional(),
    modelId: modelId.optional(),
    inputTokens: tokenCount.optional().openapi({ description: 'All prompt tokens (cached and cache-write tokens included)' }),
    outputTokens: tokenCount.optional().openapi({ description: 'All completion tokens (reasoning tokens included)' }),
    ...partFields,
  })
  .strict()
  .superRefine((body, ctx) => {
    const tokenFields = (['modelId', ...countFieldsGiven(body, WHOLES), 'providerUsage'] as const).filter(
      (k) => body[k as keyof typeof body] !== undefined,
    );
    if (body.credits !== undefined) {
      if (tokenFields.length > 0) ctx.addIssue({ code: 'custom', message: 'give either credits or modelId with token counts, not both', path: ['credits'] });
      return;
    }
    const required = body.providerUsage === undefined ? (['modelId', 'inputTokens', 'outputTokens'] as const) : (['modelId'] as const);
    for (const field of required) {
      if (body[field] === undefined) ctx.addIssue({ code: 'custom', message: 'is required unless credits is given', path: [field] });
    }
    refineCounts(body, ctx, WHOLES);
  })
  .openapi({ description: 'Either `credits`, or `modelId` + `inputTokens` + `outputTokens` (+ parts), or `modelId` + `providerUsage`' });
export type CheckBody = z.infer<typeof checkBody>;

export const calculateBody = z
  .object({
    modelId,
    inputTokens: tokenCount.optional().openapi({ description: 'All prompt tokens (cached and cache-write tokens included)' }),
    outputTokens: tokenCount.optional().openapi({ description: 'All completion tokens (reasoning tokens included)' }),
    ...partFields,
  })
  .strict()
  .superRefine((body, ctx) => {
    if (body.providerUsage === undefined) {
      for (const field of ['inputTokens', 'outputTokens'] as const) {
        if (body[field] === undefined) ctx.addIssue({ code: 'custom', message: 'is required (or give providerUsage)', path: [field] });
      }
    }
    refineCounts(body, ctx, WHOLES);
  });
export type CalculateBody = z.infer<typeof calculateBody>;

/** The token usage of a validated check/calculate body. */
export const usageOfBody = (body: CheckBody | CalculateBody) => usageOf(body, WHOLES);

export const allocateBody = z
  .object({
    userId,
    credits: positiveCreditsInput,
    expiresAt: z.iso
      .datetime({ offset: true })
      .refine((value) => Date.parse(value) > Date.now(), 'must be in the future')
      .optional()
      .openapi({ description: 'When the allocation expires (must be in the future)' }),
    expiresInDays: z.number().int().min(1).max(36_500).optional().openapi({ description: 'Alternative to expiresAt' }),
    note: z.string().max(500).optional(),
  })
  .strict()
  .refine((body) => body.expiresAt === undefined || body.expiresInDays === undefined, {
    message: 'give expiresAt or expiresInDays, not both',
    path: ['expiresInDays'],
  });
export type AllocateBody = z.infer<typeof allocateBody>;

export const transactionsQuery = paginationQuery
  .extend({ userId: userId.optional().openapi({ description: 'Another user (supervisor, admin)' }) })
  .strict();
export type TransactionsQuery = z.infer<typeof transactionsQuery>;

/**
 * GET /api/admin/reconcile: `mode` full (default: every user) or incremental (what changed since the last
 * clean run); or `userId` alone (that user only, at full depth).
 */
export const reconcileQuery = z
  .object({
    mode: z.enum(['full', 'incremental']).optional().openapi({
      description: 'full (default): every user. incremental: only users with rows written since the last clean run (full when there is none)',
    }),
    userId: userId.optional().openapi({ description: 'Check this user only (404 for a user never seen); not with mode' }),
  })
  .strict()
  .refine((query) => query.mode === undefined || query.userId === undefined, { message: 'give mode or userId, not both', path: ['userId'] });
export type ReconcileQuery = z.infer<typeof reconcileQuery>;

// ---------- responses ----------

export const allocationSchema = z
  .object({
    id: z.string(),
    totalCredits: creditsOutput,
    remainingCredits: creditsOutput,
    allocatedBy: z.string(),
    expiresAt: timestamp.nullable(),
    createdAt: timestamp,
    note: z.string().nullable(),
  })
  .openapi('Allocation');

export const balanceSchema = z
  .object({
    userId: z.string(),
    availableCredits: creditsOutput,
    reservedCredits: creditsOutput.openapi({ description: 'Held by active streaming sessions' }),
    unpaidCredits: creditsOutput.openapi({ description: 'Recorded usage that no credits covered yet: a debt new credits settle first (see UNPAID_LIMIT_CREDITS)' }),
    expiringSoon: z.object({
      credits: creditsOutput,
      before: timestamp.openapi({ description: `Now + ${EXPIRING_SOON_DAYS} days` }),
    }),
    allocations: z.array(allocationSchema).openapi({ description: 'Unexpired allocations with credits left, in consumption order' }),
    orgId: z.string().nullable().openapi({ description: 'The user\u2019s organization' }),
    budgets: z.array(budgetStatusSchema).openapi({ description: 'The budgets that apply to the user (own and org), current period' }),
  })
  .openapi('Balance');

export const checkResponse = z.object({
  sufficient: z.boolean(),
  requiredCredits: creditsOutput,
  availableCredits: creditsOutput,
  limitedBy: budgetExceededDetails
    .extend({ code: z.literal('BUDGET_EXCEEDED') })
    .optional()
    .openapi({ description: 'Present when a budget would be exceeded (then sufficient is false)' }),
});

export const calculateResponse = z.object({
  modelId: z.string(),
  priceVersion: z.number().int(),
  credits: creditsOutput.openapi({ description: 'Exact cost rounded up once to the micro-credit' }),
  breakdown: z
    .object({
      input: creditsOutput.openapi({ description: 'Uncached input tokens' }),
      cachedInput: creditsOutput,
      cacheWrite: creditsOutput,
      cacheWrite1h: creditsOutput,
      output: creditsOutput.openapi({ description: 'Output tokens other than reasoning' }),
      reasoning: creditsOutput,
    })
    .openapi({
      description: 'Cost of each token kind, each rounded up on its own, so the parts may exceed the total by up to 5 micro-credits',
    }),
});

export const allocateResponse = z.object({ allocation: allocationSchema, balance: balanceSchema });

export const ledgerType = z.enum(['grant', 'hold', 'capture', 'release', 'charge', 'expire', 'adjust', 'revoke', 'refund', 'forgive']);
export type LedgerType = z.infer<typeof ledgerType>;

export const transactionSchema = z
  .object({
    id: z.string(),
    type: ledgerType,
    credits: creditsOutput.openapi({ description: 'Size of the movement (positive)' }),
    balanceChange: creditsOutput.openapi({
      description:
        "Signed effect on the allocation's remaining credits: grant/release/refund +, hold/charge/expire/revoke -, adjust signed, capture and forgive 0",
    }),
    allocationId: z.string().nullable(),
    sessionId: z.string().nullable(),
    usageRecordId: z.string().nullable(),
    actorId: z.string().nullable(),
    note: z.string().nullable(),
    createdAt: timestamp,
  })
  .openapi('LedgerEntry');
export const transactionsResponse = page(transactionSchema);

export const reconcileResponse = z.object({
  ok: z.boolean(),
  mode: z.enum(['full', 'incremental', 'user']).optional().openapi({
    description: 'What ran: an incremental request with no usable checkpoint runs (and says) full',
  }),
  since: timestamp.nullable().optional().openapi({
    description: 'incremental: when the snapshot of the last clean run (the checkpoint it started from) was taken',
  }),
  checkedUsers: z.number().int().openapi({ description: 'Users checked (incremental: those with changes; userId: 1)' }),
  checkedAllocations: z.number().int(),
  discrepancies: z.array(
    z.object({
      userId: z.string().nullable(),
      allocationId: z.string().nullable(),
      sessionId: z.string().nullable(),
      usageRecordId: z.string().optional().openapi({ description: 'The usage record (usage_charged, usage_refunded only)' }),
      kind: z.string().openapi({
        description: 'remaining, total, held, negative_remaining, negative_held, leg_*, usage_charged, usage_refunded, foreign_entries',
      }),
      expected: creditsOutput,
      actual: creditsOutput,
    }),
  ),
});

// ---------- presenters (internal values -> the response shapes above) ----------

export interface Lot {
  id: string;
  userId: string;
  total: bigint;
  remaining: bigint;
  allocatedBy: string;
  expiresAt: Date | null;
  createdAt: Date;
  note: string | null;
}

export interface Balance {
  userId: string;
  orgId: string | null;
  budgets: BudgetStatusRow[];
  available: bigint;
  reserved: bigint;
  unpaid: bigint;
  expiringSoon: { credits: bigint; before: Date };
  allocations: Lot[];
}

export const toAllocationJson = (lot: Lot): z.infer<typeof allocationSchema> => ({
  id: lot.id,
  totalCredits: toCredits(lot.total),
  remainingCredits: toCredits(lot.remaining),
  allocatedBy: lot.allocatedBy,
  expiresAt: lot.expiresAt ? lot.expiresAt.toISOString() : null,
  createdAt: lot.createdAt.toISOString(),
  note: lot.note,
});

export const toBalanceJson = (balance: Balance): z.infer<typeof balanceSchema> => ({
  userId: balance.userId,
  availableCredits: toCredits(balance.available),
  reservedCredits: toCredits(balance.reserved),
  unpaidCredits: toCredits(balance.unpaid),
  expiringSoon: { credits: toCredits(balance.expiringSoon.credits), before: balance.expiringSoon.before.toISOString() },
  allocations: balance.allocations.map(toAllocationJson),
  orgId: balance.orgId,
  budgets: balance.budgets.map(toBudgetStatusJson),
});
