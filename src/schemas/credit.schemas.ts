import { toCredits } from '../lib/money';
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

const tokensShape = {
  modelId,
  inputTokens: tokenCount,
  outputTokens: tokenCount,
  cachedInputTokens: tokenCount.optional().openapi({ description: 'Part of inputTokens served from the prompt cache' }),
};

const cachedWithinInput = (body: { inputTokens?: number; cachedInputTokens?: number }) =>
  body.cachedInputTokens === undefined || body.inputTokens === undefined || body.cachedInputTokens <= body.inputTokens;
const cachedWithinInputIssue = { message: 'must not exceed inputTokens', path: ['cachedInputTokens'] };

/** Either `{credits}` or `{modelId, inputTokens, outputTokens[, cachedInputTokens]}`. */
export const checkBody = z
  .object({
    credits: positiveCreditsInput.optional(),
    modelId: tokensShape.modelId.optional(),
    inputTokens: tokenCount.optional(),
    outputTokens: tokenCount.optional(),
    cachedInputTokens: tokensShape.cachedInputTokens,
  })
  .strict()
  .superRefine((body, ctx) => {
    const tokenFields = (['modelId', 'inputTokens', 'outputTokens', 'cachedInputTokens'] as const).filter((k) => body[k] !== undefined);
    if (body.credits !== undefined) {
      if (tokenFields.length > 0) ctx.addIssue({ code: 'custom', message: 'give either credits or modelId with token counts, not both', path: ['credits'] });
      return;
    }
    for (const field of ['modelId', 'inputTokens', 'outputTokens'] as const) {
      if (body[field] === undefined) ctx.addIssue({ code: 'custom', message: 'is required unless credits is given', path: [field] });
    }
  })
  .refine(cachedWithinInput, cachedWithinInputIssue)
  .openapi({ description: 'Either `credits`, or `modelId` + `inputTokens` + `outputTokens` (+ `cachedInputTokens`)' });
export type CheckBody = z.infer<typeof checkBody>;

export const calculateBody = z.object(tokensShape).strict().refine(cachedWithinInput, cachedWithinInputIssue);
export type CalculateBody = z.infer<typeof calculateBody>;

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

export const transactionsQuery = paginationQuery.extend({
  userId: userId.optional().openapi({ description: 'Another user (supervisor, admin)' }),
});
export type TransactionsQuery = z.infer<typeof transactionsQuery>;

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
    unpaidCredits: creditsOutput.openapi({ description: 'Recorded usage that no credits covered yet (a debt; see UNPAID_LIMIT_CREDITS)' }),
    expiringSoon: z.object({
      credits: creditsOutput,
      before: timestamp.openapi({ description: `Now + ${EXPIRING_SOON_DAYS} days` }),
    }),
    allocations: z.array(allocationSchema).openapi({ description: 'Unexpired allocations with credits left, in consumption order' }),
  })
  .openapi('Balance');

export const checkResponse = z.object({ sufficient: z.boolean(), requiredCredits: creditsOutput, availableCredits: creditsOutput });

export const calculateResponse = z.object({
  modelId: z.string(),
  priceVersion: z.number().int(),
  credits: creditsOutput.openapi({ description: 'Exact cost rounded up once to the micro-credit' }),
  breakdown: z.object({ input: creditsOutput, cachedInput: creditsOutput, output: creditsOutput }).openapi({
    description: 'Each part rounded up on its own, so the parts may exceed the total by up to 2 micro-credits',
  }),
});

export const allocateResponse = z.object({ allocation: allocationSchema, balance: balanceSchema });

export const ledgerType = z.enum(['grant', 'hold', 'capture', 'release', 'charge', 'expire', 'adjust']);

export const transactionSchema = z
  .object({
    id: z.string(),
    type: ledgerType,
    credits: creditsOutput.openapi({ description: 'Size of the movement (positive)' }),
    balanceChange: creditsOutput.openapi({
      description: "Signed effect on the allocation's remaining credits: grant/release +, hold/charge/expire -, capture 0",
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
  checkedUsers: z.number().int(),
  checkedAllocations: z.number().int(),
  discrepancies: z.array(
    z.object({
      userId: z.string().nullable(),
      allocationId: z.string().nullable(),
      sessionId: z.string().nullable(),
      kind: z.string().openapi({ description: 'remaining, total, held, negative_remaining, negative_held, leg_*, foreign_entries' }),
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
});
