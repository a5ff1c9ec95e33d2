import { MAX_CREDITS_MICRO, parseCredits, type Micro } from '../lib/money';
import { allocationSchema, balanceSchema } from './credit.schemas';
import { creditsInput, creditsOutput, modelId, NOT_YEAR_ZERO, page, paginationQuery, positiveCreditsInput, timestamp, userId, z } from './common';
import { usageRecord } from './usage.schemas';

/**
 * Corrections (issue 16): adjust, revoke, refund. Each carries a `reason` that is written to the ledger
 * with the acting user.
 */

/** Free text that goes to the ledger: no NUL or other C0 controls except tab/CR/LF, no lone surrogates. */
export const reasonText = z
  .string()
  .min(1)
  .max(1000)
  // eslint-disable-next-line no-control-regex -- finding control characters is the point
  .refine((text) => !/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/.test(text), 'must not contain control characters')
  .refine((text) => !/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(text), 'must not contain unpaired surrogates')
  .openapi({ description: 'Why: written to the ledger with the acting user (1-1000 characters)', example: 'duplicate charge' });

/** A signed, non-zero amount of credits (a number or decimal string, at most 6 decimals, |x| <= 1e9). */
export const signedCreditsInput = z
  .union([z.number(), z.string()])
  .transform((value, ctx): Micro => {
    const negative = typeof value === 'number' ? value < 0 || Object.is(value, -0) : value.startsWith('-');
    const parsed = parseCredits(typeof value === 'number' ? Math.abs(value) : negative ? value.slice(1) : value);
    if (!parsed.ok) {
      ctx.addIssue({ code: 'custom', message: parsed.error });
      return z.NEVER;
    }
    if (parsed.value === 0n) {
      ctx.addIssue({ code: 'custom', message: 'must not be 0' });
      return z.NEVER;
    }
    return negative ? -parsed.value : parsed.value;
  })
  .openapi({
    description: `Credits, positive (add a lot) or negative (take from available lots); at most 6 decimals, |credits| <= ${MAX_CREDITS_MICRO / 1_000_000n}`,
    example: -2.5,
  });

const futureTime = z.iso
  .datetime({ offset: true })
  .refine((value) => Date.parse(value) > Date.now(), 'must be in the future');

export const adjustBody = z
  .object({
    userId,
    credits: signedCreditsInput,
    reason: reasonText,
    expiresAt: futureTime.optional().openapi({ description: 'Expiry of the lot a positive adjustment adds (must be in the future)' }),
  })
  .strict()
  .refine((body) => body.expiresAt === undefined || body.credits > 0n, {
    message: 'only a positive adjustment adds a lot that can expire',
    path: ['expiresAt'],
  })
  .openapi('AdjustRequest');
export type AdjustBody = z.infer<typeof adjustBody>;

export const adjustResponse = z
  .object({
    userId: z.string(),
    credits: creditsOutput.openapi({ description: 'The signed adjustment' }),
    reason: z.string(),
    allocation: allocationSchema.nullable().openapi({ description: 'The lot a positive adjustment added; null for a negative one' }),
    settledCredits: creditsOutput.openapi({ description: 'Of the new credits, what paid unpaid usage (SETTLE_UNPAID_ON_GRANT)' }),
    balance: balanceSchema,
  })
  .openapi('AdjustResponse');

/** Ids of rows with a bigint identity: decimal digits, no leading zeros, at most 18 digits (always in range). */
export const rowId = z
  .string()
  .regex(/^[1-9]\d{0,17}$/, 'must be a positive integer id')
  .openapi({ example: '42' });

export const allocationIdParams = z.object({ id: rowId }).strict();
export const usageRecordIdParams = z.object({ id: rowId }).strict();

export const revokeBody = z
  .object({
    reason: reasonText,
    credits: positiveCreditsInput.optional().openapi({ description: 'Revoke only this much (default: all that is left)' }),
  })
  .strict()
  .openapi('RevokeRequest');
export type RevokeBody = z.infer<typeof revokeBody>;

export const revokeResponse = z
  .object({
    allocationId: z.string(),
    userId: z.string(),
    revokedCredits: creditsOutput.openapi({ description: 'Voided now' }),
    heldCredits: creditsOutput.openapi({ description: 'Held by active sessions in this lot: not revocable' }),
    allocation: allocationSchema,
  })
  .openapi('RevokeResponse');

export const refundBody = z
  .object({
    reason: reasonText,
    credits: positiveCreditsInput.optional().openapi({ description: 'Refund only this much (default: all that is still refundable)' }),
  })
  .strict()
  .openapi('RefundRequest');
export type RefundBody = z.infer<typeof refundBody>;

export const refundResponse = usageRecord
  .extend({
    forgivenCredits: creditsOutput.openapi({ description: 'Of this refund: unpaid credits written off' }),
    returnedCredits: creditsOutput.openapi({ description: 'Of this refund: charged credits returned to lots' }),
  })
  .openapi('RefundResponse');

// ---------- schedules (recurring grants) ----------

/** An IANA time zone name the runtime knows (the database knows the same IANA names). */
export const timezone = z
  .string()
  .min(1)
  .max(64)
  .refine((tz) => {
    try {
      new Intl.DateTimeFormat('en-US', { timeZone: tz });
      return /^[A-Za-z0-9_+\-/]+$/.test(tz);
    } catch {
      return false;
    }
  }, 'must be an IANA time zone such as Europe/Berlin')
  .openapi({ example: 'Europe/Berlin' });

/**
 * How far back a schedule may start. Every period from startAt on is granted at once when the schedule is
 * created (the catch-up that also covers downtime), so a startAt years ago would mint thousands of lots.
 */
export const SCHEDULE_START_MAX_AGE_DAYS = 35;

export const createScheduleBody = z
  .object({
    userId,
    credits: positiveCreditsInput,
    period: z.enum(['day', 'week', 'month']).openapi({ description: 'Calendar period in the time zone; weeks start on Monday' }),
    timezone: timezone.optional().openapi({ description: 'IANA time zone of the periods (default UTC)' }),
    expireAtPeriodEnd: z.boolean().optional().openapi({ description: 'Each grant expires when its period ends' }),
    expiresInDays: z.number().int().min(1).max(36_500).optional().openapi({ description: 'Each grant expires this many days after its period starts' }),
    rolloverCapCredits: creditsInput
      .optional()
      .openapi({ description: 'At each new period, credits left in this schedule\u2019s earlier grants above this cap are revoked' }),
    startAt: z.iso
      .datetime({ offset: true })
      .refine(...NOT_YEAR_ZERO)
      .refine((value) => Date.parse(value) >= Date.now() - SCHEDULE_START_MAX_AGE_DAYS * 86_400_000, `must not be more than ${SCHEDULE_START_MAX_AGE_DAYS} days in the past`)
      .optional()
      .openapi({ description: `First period: the one containing startAt (default now; at most ${SCHEDULE_START_MAX_AGE_DAYS} days ago)` }),
  })
  .strict()
  .refine((body) => !(body.expireAtPeriodEnd && body.expiresInDays !== undefined), {
    message: 'give expireAtPeriodEnd or expiresInDays, not both',
    path: ['expiresInDays'],
  })
  .openapi('CreateScheduleRequest');
export type CreateScheduleBody = z.infer<typeof createScheduleBody>;

export const scheduleSchema = z
  .object({
    id: z.string(),
    userId: z.string(),
    credits: creditsOutput,
    period: z.enum(['day', 'week', 'month']),
    timezone: z.string(),
    expireAtPeriodEnd: z.boolean(),
    expiresInDays: z.number().int().nullable(),
    rolloverCapCredits: creditsOutput.nullable(),
    startAt: timestamp,
    nextPeriodStart: timestamp.openapi({ description: 'Start of the next period to be granted' }),
    createdBy: z.string(),
    createdAt: timestamp,
    deletedAt: timestamp.nullable(),
  })
  .openapi('CreditSchedule');

export const schedulesQuery = paginationQuery
  .extend({ userId: userId.optional().openapi({ description: 'Only this user\u2019s schedules' }) })
  .strict();
export type SchedulesQuery = z.infer<typeof schedulesQuery>;
export const schedulesPage = page(scheduleSchema).openapi('CreditSchedulePage');
export const scheduleIdParams = z.object({ id: rowId }).strict();

// ---------- re-rate ----------

export const rerateBody = z
  .object({
    modelId,
    fromPriceVersion: z.number().int().min(1).max(2_147_483_647),
    toPriceVersion: z.number().int().min(1).max(2_147_483_647),
    from: z.iso.datetime({ offset: true }).openapi({ description: 'Records created at or after this instant' }),
    to: z.iso.datetime({ offset: true }).openapi({ description: 'Records created at or before this instant' }),
    dryRun: z.boolean().optional().openapi({ description: 'Report what would change, change nothing' }),
  })
  .strict()
  .refine((body) => Date.parse(body.from) <= Date.parse(body.to), { message: 'must not be after to', path: ['from'] })
  .refine((body) => body.fromPriceVersion !== body.toPriceVersion, { message: 'must differ from fromPriceVersion', path: ['toPriceVersion'] })
  .openapi('RerateRequest');
export type RerateBody = z.infer<typeof rerateBody>;

export const rerateResponse = z
  .object({
    records: z.number().int().openapi({ description: 'Records re-rated (or that would be, with dryRun)' }),
    creditsCharged: creditsOutput.openapi({ description: 'Sum of the cost increases (charged, or left unpaid where credits ran out)' }),
    creditsRefunded: creditsOutput.openapi({ description: 'Sum of the cost decreases (unpaid lowered first, then returned to lots)' }),
    dryRun: z.boolean(),
  })
  .openapi('RerateResponse');
