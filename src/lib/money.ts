/**
 * The one place where credits change representation. Inside the service every amount is a `bigint`
 * count of micro-credits (1 credit = 1,000,000). The API speaks decimal credits with at most 6 places;
 * PostgreSQL returns BIGINT and sum() as strings. Converting only here means callers cannot disagree
 * on rounding.
 */
export type Micro = bigint;

export const MICRO_PER_CREDIT = 1_000_000n;
/** Largest amount a single request may carry: 1,000,000,000 credits. */
export const MAX_CREDITS_MICRO = 1_000_000_000n * MICRO_PER_CREDIT;

/** Digits without leading zeros ("00005" is not how an amount is written), a point and up to 6 decimals. */
const DECIMAL = /^(0|[1-9]\d*)(?:\.(\d{1,6}))?$/;

/**
 * Parses API input (a JSON number or a decimal string) into micro-credits, or returns an error message.
 * Numbers are read through their shortest decimal form, so 0.1 is exactly 100000 micro-credits.
 */
export function parseCredits(input: unknown): { ok: true; value: Micro } | { ok: false; error: string } {
  let text: string;
  if (typeof input === 'number') {
    if (!Number.isFinite(input)) return { ok: false, error: 'must be a finite number' };
    text = numberToPlainString(input);
  } else if (typeof input === 'string') {
    text = input; // exactly a decimal: " 1" or "1\n" is refused, not guessed at
  } else {
    return { ok: false, error: 'must be a number or a decimal string' };
  }
  if (text.startsWith('-')) return { ok: false, error: 'must not be negative' };
  const match = DECIMAL.exec(text);
  if (!match) {
    return /^\d+\.\d{7,}$/.test(text)
      ? { ok: false, error: 'must have at most 6 decimal places' }
      : { ok: false, error: 'must be a decimal number of credits' };
  }
  const value = BigInt(match[1]) * MICRO_PER_CREDIT + BigInt((match[2] ?? '').padEnd(6, '0'));
  if (value > MAX_CREDITS_MICRO) return { ok: false, error: 'must not exceed 1000000000' };
  return { ok: true, value };
}

/** A JS number in plain decimal notation (no exponent), read through its shortest round-trip form. */
export function numberToPlainString(n: number): string {
  const s = String(n);
  if (!/e/i.test(s)) return s;
  // 1e-7 or 1e21: expand exponent notation without going through floating point arithmetic.
  const [mantissa, exponentText] = s.toLowerCase().split('e');
  const exponent = Number(exponentText);
  const negative = mantissa.startsWith('-');
  const [intPart, fracPart = ''] = mantissa.replace('-', '').split('.');
  const digits = intPart + fracPart;
  const point = intPart.length + exponent;
  let out: string;
  if (point <= 0) out = '0.' + '0'.repeat(-point) + digits;
  else if (point >= digits.length) out = digits + '0'.repeat(point - digits.length);
  else out = digits.slice(0, point) + '.' + digits.slice(point);
  return (negative ? '-' : '') + out;
}

/**
 * Micro-credits to the API's JSON number. Exact below 2^33 credits (8,589,934,592): above that a double's
 * spacing exceeds one micro-credit, so e.g. 8999999999.999999 prints as 8999999999.999998. Only sums can
 * get there (a balance of many lots, system statistics); JSON numbers in Node 20 cannot carry more.
 */
export function toCredits(micro: Micro): number {
  return Number(formatCredits(micro));
}

/** Micro-credits as a plain decimal string, e.g. 1500000n -> "1.5". Used for CSV and messages. */
export function formatCredits(micro: Micro): string {
  const negative = micro < 0n;
  const abs = negative ? -micro : micro;
  const whole = abs / MICRO_PER_CREDIT;
  const frac = (abs % MICRO_PER_CREDIT).toString().padStart(6, '0').replace(/0+$/, '');
  return (negative ? '-' : '') + whole.toString() + (frac ? '.' + frac : '');
}

/** A BIGINT / NUMERIC / sum() value as returned by pg (string, number or null) to micro-credits. */
export function fromDb(value: string | number | bigint | null | undefined): Micro {
  if (value === null || value === undefined) return 0n;
  if (typeof value === 'bigint') return value;
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) throw new Error(`fromDb: ${value} is not a safe integer`);
    return BigInt(value);
  }
  if (!/^-?\d+$/.test(value)) throw new Error(`fromDb: ${value} is not an integer`);
  return BigInt(value);
}

/** A BIGINT count that is not money (tokens, request counts) from pg to a JS number. */
export function countFromDb(value: string | number | bigint | null | undefined): number {
  const n = Number(fromDb(value));
  if (!Number.isSafeInteger(n)) throw new Error(`countFromDb: ${String(value)} is too large`);
  return n;
}

/**
 * A token sum (NUMERIC in the rollups) from pg to a JSON number, read exactly from its text. Exact up to
 * 2^53 tokens; beyond that the nearest double, like toCredits for very large credit sums. Never throws:
 * a large but legitimate total is not an error.
 */
export function tokenSumFromDb(value: string | number | bigint | null | undefined): number {
  return Number(fromDb(value));
}

/** Highest price per 1M tokens of one token kind: 1,000,000 credits (API.md, Conventions "Bounds"). */
export const MAX_PRICE_PER_1M_MICRO = 1_000_000n * MICRO_PER_CREDIT;
/** Highest cost of one request: 1,000,000,000 credits (API.md, Conventions "Bounds"). */
export const MAX_REQUEST_COST_MICRO = MAX_CREDITS_MICRO;

/** Cost of tokens at a price in micro-credits per 1M tokens, rounded up to the micro-credit. */
export function costOfTokens(tokens: bigint | number, pricePer1MMicro: Micro): Micro {
  const product = BigInt(tokens) * pricePer1MMicro;
  return (product + 999_999n) / 1_000_000n;
}
