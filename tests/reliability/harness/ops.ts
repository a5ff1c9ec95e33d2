import crypto from 'node:crypto';
import { api, type CallResult } from './http';

/** Thin wrappers over the money endpoints (API.md), so scenarios read as what they do. */
export const MODEL = 'gpt-4o-mini';

export const newId = (prefix: string) => `${prefix}-${crypto.randomUUID()}`;

export function allocate(
  url: string,
  supervisorToken: string,
  body: { userId: string; credits: number | string; expiresAt?: string; expiresInDays?: number; note?: string },
  idempotencyKey?: string,
): Promise<CallResult> {
  return api(url, supervisorToken, 'POST', '/api/credits/allocate', body, idempotencyKey ? { 'Idempotency-Key': idempotencyKey } : {});
}

export function initialize(
  url: string,
  token: string,
  body: { sessionId?: string; modelId?: string; estimatedCredits?: number | string; estimatedInputTokens?: number; estimatedOutputTokens?: number; ttlSeconds?: number },
  idempotencyKey?: string,
): Promise<CallResult> {
  return api(url, token, 'POST', '/api/streaming-sessions/initialize', { modelId: MODEL, ...body }, idempotencyKey ? { 'Idempotency-Key': idempotencyKey } : {});
}

export function finalize(
  url: string,
  token: string,
  body: { sessionId: string; actualInputTokens: number; actualOutputTokens: number; cachedInputTokens?: number },
  idempotencyKey?: string,
): Promise<CallResult> {
  return api(url, token, 'POST', '/api/streaming-sessions/finalize', body, idempotencyKey ? { 'Idempotency-Key': idempotencyKey } : {});
}

export function abort(
  url: string,
  token: string,
  body: { sessionId: string; actualInputTokens?: number; actualOutputTokens?: number; reason?: string },
  idempotencyKey?: string,
): Promise<CallResult> {
  return api(url, token, 'POST', '/api/streaming-sessions/abort', body, idempotencyKey ? { 'Idempotency-Key': idempotencyKey } : {});
}

export function recordUsage(
  url: string,
  token: string,
  body: { service: string; operation: string; credits?: number | string; modelId?: string; inputTokens?: number; outputTokens?: number; metadata?: Record<string, unknown>; userId?: string },
  idempotencyKey?: string,
): Promise<CallResult> {
  return api(url, token, 'POST', '/api/usage/record', body, idempotencyKey ? { 'Idempotency-Key': idempotencyKey } : {});
}

/** Micro-credits of the user's available balance straight from the database. */
export async function availableMicro(sql: (q: string, p: unknown[]) => Promise<Array<Record<string, unknown>>>, userId: string): Promise<bigint> {
  const [row] = await sql(`SELECT acct_available($1)::text AS a`, [userId]);
  return BigInt(row.a as string);
}

export const pick = <T>(items: readonly T[]): T => items[Math.floor(Math.random() * items.length)];
export const randomInt = (min: number, max: number) => min + Math.floor(Math.random() * (max - min + 1));
