import { extendZodWithOpenApi } from '@asteasolutions/zod-to-openapi';
import { z } from 'zod';
import { AppError } from '../lib/errors';
import { parseCredits, type Micro } from '../lib/money';

// Adds .openapi() to zod schemas; every schema module imports z from here.
extendZodWithOpenApi(z);
export { z };

/**
 * Request schemas are strict: an unknown field is a VALIDATION_ERROR rather than silently ignored, so a
 * caller who sends `remainingCredits` or `allocatedBy` learns at once that it has no effect.
 */

/** An amount of credits in a request: a JSON number or decimal string, at most 6 decimals, 0..1e9. */
export const creditsInput = z
  .union([z.number(), z.string()])
  .transform((value, ctx): Micro => {
    const parsed = parseCredits(value);
    if (!parsed.ok) {
      ctx.addIssue({ code: 'custom', message: parsed.error });
      return z.NEVER;
    }
    return parsed.value;
  })
  .openapi({
    description: 'Credits: a number or decimal string with at most 6 decimal places, 0 to 1,000,000,000',
    example: 12.5,
  });

/** A strictly positive amount of credits in a request. */
export const positiveCreditsInput = creditsInput.refine((micro) => micro > 0n, 'must be greater than 0');

/** An amount of credits in a response (exact: produced from micro-credits by toCredits). */
export const creditsOutput = z.number().openapi({ description: 'Credits, up to 6 decimal places', example: 12.5 });

/** A token count: a non-negative integer up to 10^12. */
export const tokenCount = z.number().int().min(0).max(1_000_000_000_000).openapi({ example: 1200 });

export const modelId = z.string().min(1).max(128).regex(/^[A-Za-z0-9._:/-]+$/, 'letters, digits and . _ : / - only');

export const userId = z.string().min(1).max(255);

/** ISO 8601 timestamp in a response. */
export const timestamp = z.string().openapi({ format: 'date-time', example: '2026-11-24T12:00:00.000Z' });

/** ?limit=&cursor= for lists. limit defaults to 50 and may not exceed 500. */
export const paginationQuery = z.object({
  limit: z.coerce.number().int().min(1).max(500).default(50),
  cursor: z.string().min(1).max(512).optional(),
});

export const page = <T extends z.ZodType>(item: T) =>
  z.object({ data: z.array(item), nextCursor: z.string().nullable() });

/** Opaque list cursors: base64url of a JSON array of the last row's sort keys. */
export function encodeCursor(keys: unknown[]): string {
  return Buffer.from(JSON.stringify(keys)).toString('base64url');
}

/** Decodes a cursor from encodeCursor; a cursor that is not one is a VALIDATION_ERROR. */
export function decodeCursor(cursor: string | undefined): unknown[] | undefined {
  if (cursor === undefined) return undefined;
  try {
    const keys: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (Array.isArray(keys)) return keys;
  } catch {
    // fall through
  }
  throw new AppError('VALIDATION_ERROR', 'The request is not valid', {
    problems: [{ location: 'query', path: 'cursor', message: 'is not a cursor this service issued' }],
  });
}

export const errorResponse = z
  .object({
    error: z.object({
      code: z.string().openapi({ example: 'INSUFFICIENT_CREDITS' }),
      message: z.string(),
      details: z.record(z.string(), z.unknown()).optional(),
      requestId: z.string(),
    }),
  })
  .openapi('Error');
