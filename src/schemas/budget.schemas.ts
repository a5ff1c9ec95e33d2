import { toCredits } from '../lib/money';
import { creditsInput, creditsOutput, modelId, page, paginationQuery, printableId, timestamp, userId, z } from './common';

/** An organization id: like a user id (and like the token's org claim), 1-255 printable characters. */
export const orgId = printableId;

export const budgetPeriod = z.enum(['day', 'week', 'month']);

/**
 * An IANA time zone name that both this process (Intl) and PostgreSQL know, e.g. `Europe/Berlin` or `UTC`.
 * Offsets such as `+02:00` are refused: PostgreSQL reads POSIX offsets with the opposite sign.
 */
export const timezone = z
  .string()
  .min(1)
  .max(64)
  .refine((value) => /^[A-Za-z][A-Za-z0-9_+-]*(\/[A-Za-z0-9_+-]+)*$/.test(value) && isIanaZone(value), 'must be an IANA time zone such as Europe/Berlin')
  .openapi({ description: 'IANA time zone whose calendar days, weeks (Monday first) and months the periods follow', example: 'Europe/Berlin' });

function isIanaZone(name: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: name });
    return true;
  } catch {
    return false;
  }
}

const scopeSchema = z
  .union([z.object({ userId }).strict(), z.object({ orgId }).strict()])
  .openapi({ description: 'Exactly one of `{userId}` or `{orgId}`' });

// ---------- requests ----------

export const createBudgetBody = z
  .object({
    scope: scopeSchema,
    period: budgetPeriod,
    limitCredits: creditsInput,
    modelId: modelId.optional().openapi({ description: 'Only spend on this model counts (default: all models)' }),
    timezone: timezone.optional().openapi({ description: 'Default UTC' }),
  })
  .strict();
export type CreateBudgetBody = z.infer<typeof createBudgetBody>;

export const updateBudgetBody = z.object({ limitCredits: creditsInput }).strict();
export type UpdateBudgetBody = z.infer<typeof updateBudgetBody>;

export const budgetIdParams = z.object({ id: z.string().min(1).max(255) });

export const listBudgetsQuery = paginationQuery
  .extend({ userId: userId.optional(), orgId: orgId.optional() })
  .strict()
  .refine((q) => q.userId === undefined || q.orgId === undefined, { message: 'give userId or orgId, not both', path: ['orgId'] });
export type ListBudgetsQuery = z.infer<typeof listBudgetsQuery>;

export const budgetStatusQuery = z
  .object({
    userId: userId.optional().openapi({ description: 'Another user (supervisor, admin)' }),
    orgId: orgId.optional().openapi({ description: 'An organization (supervisor, admin)' }),
  })
  .strict()
  .refine((q) => q.userId === undefined || q.orgId === undefined, { message: 'give userId or orgId, not both', path: ['orgId'] });
export type BudgetStatusQuery = z.infer<typeof budgetStatusQuery>;

export const setOrgBody = z
  .object({ orgId: orgId.nullable().openapi({ description: 'The organization, or null to remove the user from theirs' }) })
  .strict();
export type SetOrgBody = z.infer<typeof setOrgBody>;
export const userIdParams = z.object({ userId });

// ---------- responses ----------

const scopeOutput = z.union([z.object({ userId: z.string() }), z.object({ orgId: z.string() })]);

export const budgetSchema = z
  .object({
    id: z.string(),
    budgetId: z.string().openapi({ description: 'Same as id' }),
    scope: scopeOutput,
    period: budgetPeriod,
    limitCredits: creditsOutput,
    modelId: z.string().nullable(),
    timezone: z.string(),
    createdBy: z.string().nullable(),
    createdAt: timestamp,
    updatedAt: timestamp,
  })
  .openapi('Budget');
export const budgetListResponse = page(budgetSchema);

export const budgetStatusSchema = z
  .object({
    budgetId: z.string(),
    scope: scopeOutput,
    period: budgetPeriod,
    modelId: z.string().nullable(),
    limitCredits: creditsOutput,
    spentCredits: creditsOutput.openapi({ description: 'Captured or charged in the current period' }),
    heldCredits: creditsOutput.openapi({ description: 'Held by active sessions opened in the current period' }),
    remainingCredits: creditsOutput.openapi({ description: 'limit - spent - held, at least 0' }),
    periodStart: timestamp,
    resetsAt: timestamp.openapi({ description: 'Start of the next period' }),
  })
  .openapi('BudgetStatus');
export const budgetStatusResponse = z.object({ data: z.array(budgetStatusSchema) });

export const budgetExceededDetails = z
  .object({
    budgetId: z.string(),
    scope: scopeOutput,
    period: budgetPeriod,
    limitCredits: creditsOutput,
    spentCredits: creditsOutput,
    heldCredits: creditsOutput,
    resetsAt: timestamp,
  })
  .openapi('BudgetExceededDetails');

export const userOrgResponse = z.object({ userId: z.string(), orgId: z.string().nullable() });

// ---------- presenters ----------

/** A budget row (snake_case, as PostgreSQL returns it). */
export interface BudgetRow {
  id: string;
  user_id: string | null;
  org_id: string | null;
  period: 'day' | 'week' | 'month';
  limit_credits: string;
  model_id: string | null;
  timezone: string;
  created_by: string | null;
  created_at: Date;
  updated_at: Date;
}

/** A row of the ledger's budget status (Ledger.budgetStatus). */
export interface BudgetStatusRow {
  budget_id: string;
  user_id: string | null;
  org_id: string | null;
  period: 'day' | 'week' | 'month';
  model_id: string | null;
  timezone: string;
  limit_credits: string;
  spent_credits: string;
  held_credits: string;
  period_start: Date | string;
  resets_at: Date | string;
}

const scopeOf = (row: { user_id: string | null; org_id: string | null }) =>
  row.user_id !== null ? { userId: row.user_id } : { orgId: row.org_id! };
const iso = (value: Date | string) => new Date(value).toISOString();

export const toBudgetJson = (row: BudgetRow): z.infer<typeof budgetSchema> => ({
  id: String(row.id),
  budgetId: String(row.id),
  scope: scopeOf(row),
  period: row.period,
  limitCredits: toCredits(BigInt(row.limit_credits)),
  modelId: row.model_id,
  timezone: row.timezone,
  createdBy: row.created_by,
  createdAt: iso(row.created_at),
  updatedAt: iso(row.updated_at),
});

export const toBudgetStatusJson = (row: BudgetStatusRow): z.infer<typeof budgetStatusSchema> => {
  const limit = BigInt(row.limit_credits);
  const spent = BigInt(row.spent_credits);
  const held = BigInt(row.held_credits);
  const remaining = limit - spent - held;
  return {
    budgetId: String(row.budget_id),
    scope: scopeOf(row),
    period: row.period,
    modelId: row.model_id,
    limitCredits: toCredits(limit),
    spentCredits: toCredits(spent),
    heldCredits: toCredits(held),
    remainingCredits: toCredits(remaining > 0n ? remaining : 0n),
    periodStart: iso(row.period_start),
    resetsAt: iso(row.resets_at),
  };
};

/** The details of a ledger budget refusal (micro-credits as text) as API details (credits). */
export function toBudgetExceededDetails(refusal: Record<string, unknown>): z.infer<typeof budgetExceededDetails> {
  return {
    budgetId: String(refusal.budgetId),
    scope: refusal.scope as { userId: string } | { orgId: string },
    period: refusal.period as 'day' | 'week' | 'month',
    limitCredits: toCredits(BigInt(refusal.limitCredits as string)),
    spentCredits: toCredits(BigInt(refusal.spentCredits as string)),
    heldCredits: toCredits(BigInt(refusal.heldCredits as string)),
    resetsAt: iso(refusal.resetsAt as string),
  };
}
