import { extendZodWithOpenApi } from '@asteasolutions/zod-to-openapi';
import { z } from 'zod';
import { AppError } from '../lib/errors';
import { parseCredits, type Micro } from '../lib/money';
import { idProblem } from './text';

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


/** An id chosen by a caller or the token issuer: 1-255 printable characters (API.md, Conventions "Text"). */
export const printableId = z
  .string()
  .superRefine((value, ctx) => {
    const problem = idProblem(value);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  })
  .openapi({ minLength: 1, maxLength: 255, description: '1-255 printable characters' });

/** A model id: an id like the others (Vertex AI's `claude-3-5-sonnet@20240620`, `openai/gpt-4o`, …). */
export const modelId = printableId.openapi({ example: 'gpt-4o' });

export const userId = printableId;

/**
 * ISO 8601 writes 1 BC as year 0000; PostgreSQL's timestamps have no year 0 and would refuse it deep in a
 * statement (a 400 without the problem named). Refused at the edge instead.
 */
export const NOT_YEAR_ZERO = [
  (value: string) => !value.startsWith('0000'),
  // abort: nothing after it (a transform, the range's own checks) runs on the refused value.
  { message: 'year 0000 does not exist (years start at 0001)', abort: true },
] as const;

/** ISO 8601 timestamp in a response. */
export const timestamp = z.string().openapi({ format: 'date-time', example: '2026-11-24T12:00:00.000Z' });

/** ?limit=&cursor= for lists. limit defaults to 50 and may not exceed 500. */
export const paginationQuery = z.object({
  limit: z.coerce.number().int().min(1).max(500).default(50),
  cursor: z
    .string()
    .min(1)
    .max(512)
    .regex(/^[A-Za-z0-9_-]+={0,2}$/, 'is not a cursor this service issued')
    .optional(),
});

export type Page = z.output<typeof paginationQuery>;

/** ?limit&cursor and nothing else, for a list without filters (an unknown parameter is a 400, like an unknown body field). */
export const listQuery = paginationQuery.strict();

export const page = <T extends z.ZodType>(item: T) =>
  z.object({ data: z.array(item), nextCursor: z.string().nullable() });

/** Opaque list cursors: base64url of a JSON array of the last row's sort keys. */
export function encodeCursor(keys: unknown[]): string {
  return Buffer.from(JSON.stringify(keys)).toString('base64url');
}

export const invalidCursor = () =>
  new AppError('VALIDATION_ERROR', 'The request is not valid', {
    problems: [{ location: 'query', path: 'cursor', message: 'is not a cursor this service issued' }],
  });

/** Decodes a cursor from encodeCursor; a cursor that is not one is a VALIDATION_ERROR. */
export function decodeCursor(cursor: string | undefined): unknown[] | undefined {
  if (cursor === undefined) return undefined;
  try {
    const keys: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (Array.isArray(keys)) return keys;
  } catch {
    // fall through
  }
  throw invalidCursor();
}

/**
 * A cursor of one key (an id), the key when `valid` accepts it, null without a cursor; anything else
 * (not a cursor, other keys, a forged id) is a VALIDATION_ERROR.
 */
export function decodeKeyCursor(cursor: string | undefined, valid: (key: string) => boolean): string | null {
  const keys = decodeCursor(cursor);
  if (keys === undefined) return null;
  if (keys.length === 1 && typeof keys[0] === 'string' && valid(keys[0])) return keys[0];
  throw invalidCursor();
}

/*
 * Cursor keys are checked in code before they reach SQL (API.md: a forged or out-of-range cursor is a 400,
 * never a 500): a bigint key must fit PostgreSQL's bigint, a time key must be a real instant.
 */
const BIGINT_MAX = 2n ** 63n - 1n;
/** 9999-12-31T23:59:59.999999Z in microseconds since the epoch: the latest instant a cursor may name. */
const MAX_EPOCH_MICROS = 253_402_300_799_999_999n;

/** A non-negative bigint key as a decimal string (ids), or null when it is not one. */
export function cursorBigint(value: unknown): string | null {
  if (typeof value !== 'string' || !/^\d{1,19}$/.test(value)) return null;
  return BigInt(value) <= BIGINT_MAX ? value : null;
}

/** Microseconds since the epoch between 1970 and 9999 as a decimal string, or null. */
export function cursorEpochMicros(value: unknown): string | null {
  if (typeof value !== 'string' || !/^\d{1,18}$/.test(value)) return null;
  return BigInt(value) <= MAX_EPOCH_MICROS ? value : null;
}

const PG_UTC_TIME = /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})(\.\d{1,6})?\+00$/;

/** A timestamptz as PostgreSQL prints it in UTC ("2026-11-24 12:00:00.123456+00") naming a real instant, or null. */
export function cursorPgTime(value: unknown): string | null {
  if (typeof value !== 'string') return null;
  const m = PG_UTC_TIME.exec(value);
  if (!m) return null;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number);
  const date = new Date(Date.UTC(year, month - 1, day, hour, minute, second));
  const real =
    year >= 1970 &&
    date.getUTCFullYear() === year &&
    date.getUTCMonth() === month - 1 &&
    date.getUTCDate() === day &&
    date.getUTCHours() === hour &&
    date.getUTCMinutes() === minute &&
    date.getUTCSeconds() === second;
  return real ? value : null;
}

export const errorResponse = z
  .object({
    error: z.object({
      code: z.string().openapi({ example: 'INSUFFICIENT_CREDITS' }),
      message: z.string(),
      details: z.record(z.string(), z.unknown()).openapi({ description: 'What the code needs to be acted on; {} when nothing' }),
      requestId: z.string(),
    }),
  })
  .openapi('Error');
