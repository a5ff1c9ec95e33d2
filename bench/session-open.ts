/**
 * The statement `POST /api/streaming-sessions/initialize` sends for a caller this process mirrored lately
 * (src/services/streaming-session.service.ts): `acct_session_open` in autocommit, as a named prepared
 * statement, with the same casts and the same argument order. P0 (the database's ceiling, bench/load.ts)
 * and I0 (the minimal Express handler, bench/baseline-server.ts) both send exactly this; I3 sends it and
 * then finalize's statement (`acct_session_settle`, below) for the same session.
 */
import crypto from 'node:crypto';
import type { ClientBase } from 'pg';
import { callOf } from '../src/ledger/ledger';
import { ESTIMATED_INPUT_TOKENS, ESTIMATED_OUTPUT_TOKENS, MODEL_ID } from './constants';

export const SESSION_OPEN = {
  name: 'acct_session_open',
  // The gateway's own text, so P0 and I0 send exactly what initialize sends.
  text: `SELECT * FROM ${callOf('acct_session_open')}`,
};

/** The service's default SESSION_TTL_SECONDS. */
export const SESSION_TTL_SECONDS = 900;

export interface Price {
  modelId: string;
  version: number;
  input: bigint;
  output: bigint;
}

/** The newest price version of every model (the seed has one per model). */
export async function loadPrices(client: Pick<ClientBase, 'query'>): Promise<Map<string, Price>> {
  const { rows } = await client.query<{ model_id: string; price_version: number; input_price_per_1m: string; output_price_per_1m: string }>(
    `SELECT DISTINCT ON (model_id) model_id, price_version, input_price_per_1m, output_price_per_1m
       FROM model_prices ORDER BY model_id, price_version DESC`,
  );
  return new Map(rows.map((r) => [r.model_id, { modelId: r.model_id, version: r.price_version, input: BigInt(r.input_price_per_1m), output: BigInt(r.output_price_per_1m) }]));
}

/** Micro-credits for the tokens at the price, rounded up (as the service's costAt). */
export const costOf = (price: Price, input: number, output: number) => (BigInt(input) * price.input + BigInt(output) * price.output + 999_999n) / 1_000_000n;

/** The bind values of one open, in the service's order (no unpaid limit, as the bench's service runs). */
export function sessionOpenValues(price: Price, sessionId: string, userId: string, input = ESTIMATED_INPUT_TOKENS, output = ESTIMATED_OUTPUT_TOKENS): unknown[] {
  const hash = crypto.createHash('sha256').update(JSON.stringify([price.modelId, input, output, null, null])).digest('hex');
  return [
    sessionId,
    userId,
    price.modelId,
    price.version,
    input,
    output,
    costOf(price, input, output).toString(),
    costOf(price, input, 0).toString(),
    hash,
    SESSION_TTL_SECONDS,
    null,
  ];
}

/** The statement `POST /api/streaming-sessions/finalize` sends (src/ledger/ledger.ts settleSession). */
export const SESSION_SETTLE = {
  name: 'acct_session_settle',
  text: `SELECT * FROM ${callOf('acct_session_settle')}`,
};

/** The bind values of a finalize by the session's owner with input and output counts only, in the service's order. */
export function sessionSettleValues(price: Price, sessionId: string, userId: string, input: number, output: number): unknown[] {
  const absent = null; // token kinds the request did not give, as the service sends them
  return [sessionId, userId, false, 'finalize', price.modelId, price.version, costOf(price, input, output).toString(), String(input), String(output),
    absent, null, absent, absent, absent, userId];
}

export const BENCH_MODEL = MODEL_ID;
