import { countFieldsGiven, partFields, refineCounts, usageOf } from '../metering/body';
import { creditsOutput, modelId, page, positiveCreditsInput, printableId, timestamp, tokenCount, userId, z } from './common';

/** A client-chosen session id: its permanent idempotency id; an id like the others (1-255 printable characters). */
export const sessionId = printableId.openapi({ example: '6f1c2d3e-1111-4aaa-8bbb-123456789abc' });

const ESTIMATE = { input: 'estimatedInputTokens', output: 'estimatedOutputTokens' };
const ACTUAL = { input: 'actualInputTokens', output: 'actualOutputTokens' };
/** Session ids are scoped to their user: an admin names the owner to settle another user's session. */
const sessionOwner = userId
  .optional()
  .openapi({ description: "Whose session (admin only; default: the caller). Another user's session is NOT_FOUND for everyone else." });

/**
 * initialize: a model plus either token estimates (priced at the model's current price) or an explicit
 * credit estimate. ttlSeconds is bounded by SESSION_MAX_TTL_SECONDS, so the schema is built from config.
 */
export function initializeSessionBody(maxTtlSeconds: number) {
  return z
    .object({
      sessionId: sessionId.optional().openapi({ description: 'Your id for the session (default: a new UUID). Retrying with the same id and body returns the same session.' }),
      modelId,
      estimatedInputTokens: tokenCount.optional().openapi({ description: 'Estimated prompt tokens (parts included)' }),
      estimatedOutputTokens: tokenCount.optional().openapi({ description: 'Estimated completion tokens (reasoning included)' }),
      ...partFields,
      estimatedCredits: positiveCreditsInput
        .optional()
        .openapi({ description: 'Instead of token estimates: the credits to hold' }),
      ttlSeconds: z
        .number()
        .int()
        .min(1)
        .max(maxTtlSeconds)
        .optional()
        .openapi({ description: `Seconds before the sweeper expires the session (default SESSION_TTL_SECONDS, at most ${maxTtlSeconds})` }),
    })
    .strict()
    .superRefine((body, ctx) => {
      const hasTokens = countFieldsGiven(body, ESTIMATE).length > 0 || body.providerUsage !== undefined;
      if (body.estimatedCredits !== undefined && hasTokens) {
        ctx.addIssue({ code: 'custom', path: ['estimatedCredits'], message: 'give either estimatedCredits or token estimates, not both' });
        return;
      } else if (body.estimatedCredits === undefined && body.providerUsage === undefined) {
        for (const field of ['estimatedInputTokens', 'estimatedOutputTokens'] as const) {
          if (body[field] === undefined) ctx.addIssue({ code: 'custom', path: [field], message: 'is required (or give estimatedCredits)' });
        }
      }
      refineCounts(body, ctx, ESTIMATE);
    })
    .openapi('InitializeSessionRequest');
}
export type InitializeSessionBody = z.infer<ReturnType<typeof initializeSessionBody>>;

export const finalizeSessionBody = z
  .object({
    sessionId,
    actualInputTokens: tokenCount.optional().openapi({ description: 'All prompt tokens (parts included); required unless providerUsage is given' }),
    actualOutputTokens: tokenCount.optional().openapi({ description: 'All completion tokens (reasoning included); required unless providerUsage is given' }),
    ...partFields,
    userId: sessionOwner,
  })
  .strict()
  .superRefine((body, ctx) => {
    if (body.providerUsage === undefined) {
      for (const field of ['actualInputTokens', 'actualOutputTokens'] as const) {
        if (body[field] === undefined) ctx.addIssue({ code: 'custom', path: [field], message: 'is required (or give providerUsage)' });
      }
    }
    refineCounts(body, ctx, ACTUAL);
  })
  .openapi('FinalizeSessionRequest');
export type FinalizeSessionBody = z.infer<typeof finalizeSessionBody>;

export const abortSessionBody = z
  .object({
    sessionId,
    actualInputTokens: tokenCount.optional().openapi({ description: 'Tokens streamed before the abort (charged)' }),
    actualOutputTokens: tokenCount.optional(),
    ...partFields,
    reason: z.string().min(1).max(500).optional(),
    userId: sessionOwner,
  })
  .strict()
  .superRefine((body, ctx) => refineCounts(body, ctx, ACTUAL))
  .openapi('AbortSessionRequest');
export type AbortSessionBody = z.infer<typeof abortSessionBody>;

/** Token usage of a validated body (providerUsage mapped; absent counts 0). */
export const estimateOf = (body: InitializeSessionBody) => usageOf(body, ESTIMATE);
export const actualOf = (body: FinalizeSessionBody | AbortSessionBody) => usageOf(body, ACTUAL);
/** Does an abort body say what was streamed? */
export const abortHasCounts = (body: AbortSessionBody) => countFieldsGiven(body, ACTUAL).length > 0 || body.providerUsage !== undefined;

/** extend: a new TTL and/or a larger hold (in output tokens at the session's price, or in credits). */
export function extendSessionBody(maxTtlSeconds: number) {
  return z
    .object({
      sessionId,
      ttlSeconds: z
        .number()
        .int()
        .min(1)
        .max(maxTtlSeconds)
        .optional()
        .openapi({ description: `expiresAt becomes now + ttlSeconds (at most ${maxTtlSeconds})` }),
      additionalOutputTokens: tokenCount
        .min(1)
        .optional()
        .openapi({ description: "Grow the hold by the cost of this many output tokens at the session's price version" }),
      additionalCredits: positiveCreditsInput.optional().openapi({ description: 'Grow the hold by this many credits' }),
      userId: sessionOwner,
    })
    .strict()
    .superRefine((body, ctx) => {
      if (body.additionalOutputTokens !== undefined && body.additionalCredits !== undefined) {
        ctx.addIssue({ code: 'custom', path: ['additionalCredits'], message: 'give either additionalOutputTokens or additionalCredits, not both' });
      } else if (body.ttlSeconds === undefined && body.additionalOutputTokens === undefined && body.additionalCredits === undefined) {
        ctx.addIssue({ code: 'custom', path: ['ttlSeconds'], message: 'give ttlSeconds, additionalOutputTokens or additionalCredits' });
      }
    })
    .openapi('ExtendSessionRequest');
}
export type ExtendSessionBody = z.infer<ReturnType<typeof extendSessionBody>>;

export const sessionStatus = z.enum(['active', 'completed', 'aborted', 'expired']);

export const sessionResponse = z
  .object({
    sessionId: z.string(),
    modelId: z.string(),
    status: sessionStatus.openapi({ description: '"active" when just created; a replay shows the current status' }),
    estimatedCredits: creditsOutput,
    allocatedCredits: creditsOutput.openapi({ description: 'Credits held for the session' }),
    priceVersion: z.number().int(),
    expiresAt: timestamp,
  })
  .openapi('StreamingSession');

export const settledSessionResponse = z
  .object({
    sessionId: z.string(),
    status: z.enum(['completed', 'aborted']),
    allocatedCredits: creditsOutput.openapi({ description: 'Credits that were held' }),
    usedCredits: creditsOutput.openapi({ description: 'Real cost at the session price version (includes unpaidCredits)' }),
    refundedCredits: creditsOutput.openapi({ description: 'Part of the hold given back' }),
    unpaidCredits: creditsOutput.openapi({ description: 'Cost that no available credits could cover' }),
  })
  .openapi('SettledStreamingSession');

export const activeSession = z
  .object({
    sessionId: z.string(),
    modelId: z.string(),
    status: z.literal('active'),
    estimatedCredits: creditsOutput,
    allocatedCredits: creditsOutput,
    priceVersion: z.number().int(),
    expiresAt: timestamp,
    createdAt: timestamp,
  })
  .openapi('ActiveStreamingSession');

export const activeSessionWithUser = activeSession.extend({ userId }).openapi('ActiveStreamingSessionWithUser');

export const activeSessionsPage = page(activeSession);
export const allActiveSessionsPage = page(activeSessionWithUser);
