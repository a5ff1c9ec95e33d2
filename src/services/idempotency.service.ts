import crypto from 'node:crypto';
import type { Transaction } from 'sequelize';
import type { Database } from '../db/database';
import { pgErrorCode } from '../db/database';
import { AppError, type ErrorCode } from '../lib/errors';
import { effectOfStatus, STATUS_OF, STATUS_OF_EFFECT, type Effect } from '../lib/http-status';

/** What a money operation returns: what it did (created something, or done) and its result. */
export interface Outcome<T = unknown> {
  effect: Effect;
  body: T;
  /** True when this is the stored result of an earlier request with the same key. */
  replayed?: boolean;
}

export interface IdempotencyContext {
  callerId: string;
  key: string;
  requestHash: string;
}

/** Stable hash of what makes two requests "the same": method, route and the canonical JSON body. */
export function requestHash(method: string, path: string, body: unknown): string {
  return crypto.createHash('sha256').update(`${method} ${path}\n${canonicalJson(body)}`).digest('hex');
}

function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

/**
 * Stripe-style idempotency keys. The key row is inserted in the same transaction as the work it guards:
 * a crash rolls back both, and a concurrent request with the same key blocks on the unique index until
 * the first commits, then replays its stored response. The work's refusals (a 4xx AppError: not enough
 * credits, a budget, a session that ended, …) are answers too: the work is rolled back to a savepoint and
 * the refusal is stored under the key, so a retry gets the same answer even after the state changed
 * (API.md: "replays the first response"). Failures that are not answers (5xx, a lost database, a
 * deadlock, a "finish that first" CONFLICT) roll the key back with everything else, and the request may be
 * retried.
 *
 * A stored refusal's row is written already expired (`expires_at` = its commit), and lives until
 * `created_at` + the TTL instead (refusalLive below): a version of this service from before refusals were
 * stored reads an expired row as a free key and runs the request, where it would replay the refusal's
 * body as a 200. So a rolling upgrade, or a rollback, never answers a refused request with a success.
 */
export class IdempotencyService {
  constructor(
    private readonly db: Database,
    private readonly ttlHours: number,
  ) {}

  async run<T>(
    context: IdempotencyContext | undefined,
    work: (tx: Transaction) => Promise<Outcome<T>>,
  ): Promise<Outcome<T>> {
    if (!context) return this.db.transaction(work);
    // Re-running after an unknown COMMIT is safe here: a committed first run is found under the key and replayed.
    const answer = await this.db.transaction(async (tx): Promise<Outcome<T> | AppError> => {
      const stored = await this.claim(context, tx);
      if (stored) return stored as Outcome<T> | AppError;
      await this.db.query('SAVEPOINT idempotent_work', [], tx);
      let response: Outcome<T>;
      try {
        response = await work(tx);
      } catch (error) {
        if (!(error instanceof AppError) || !STORED_REFUSALS.has(error.code)) throw error;
        // The work is undone (work registers afterCommit hooks only past its last refusal: they would run);
        // the key stays taken, now holding this refusal.
        await this.db.query('ROLLBACK TO SAVEPOINT idempotent_work', [], tx);
        const body = { error: { code: error.code, message: error.message, details: error.details ?? {} } };
        await this.store(context, STATUS_OF[error.code], body, tx, true);
        return error;
      }
      await this.store(context, STATUS_OF_EFFECT[response.effect], response.body, tx, false);
      return response;
    }, { rerunnable: true });
    if (answer instanceof AppError) throw answer;
    return answer;
  }

  private async store(context: IdempotencyContext, status: number, body: unknown, tx: Transaction, refusal: boolean): Promise<void> {
    await this.db.query(
      `UPDATE idempotency_keys SET response_status = $3, response_body = $4::json,
              expires_at = CASE WHEN $5 THEN now() ELSE expires_at END
        WHERE caller_id = $1 AND key = $2 RETURNING 1`,
      [context.callerId, context.key, status, JSON.stringify(body), refusal],
      tx,
    );
  }

  /**
   * For work that runs in several transactions of its own (re-rate): the stored response of a completed
   * request with this key (a replay; a stored refusal is thrown), null when the key is free, 422 when it was
   * used for another request. The work itself must be safe to repeat; run() then stores its response.
   */
  async peek(context: IdempotencyContext | undefined): Promise<Outcome | null> {
    if (!context) return null;
    const [row] = await this.db.query<{ request_hash: string; response_status: number; response_body: unknown }>(
      `SELECT request_hash, response_status, response_body FROM idempotency_keys
        WHERE caller_id = $1 AND key = $2 AND response_status <> 0 AND (expires_at > now() OR ${refusalLive('$3')})`,
      [context.callerId, context.key, this.ttlHours],
    );
    if (!row) return null;
    const replay = replayOf(context, row);
    if (replay instanceof AppError) throw replay;
    return replay;
  }

  /** Takes the key for this transaction, or returns the response (or refusal) stored under it. */
  private async claim(context: IdempotencyContext, tx: Transaction): Promise<Outcome | AppError | null> {
    let claimed: object[];
    try {
      // An expired key is taken over as if new; a live one is left alone (and locked until we finish).
      claimed = await this.db.query(
        `INSERT INTO idempotency_keys AS k (caller_id, key, request_hash, response_status, response_body, expires_at)
         VALUES ($1, $2, $3, 0, 'null'::json, now() + make_interval(hours => $4))
         ON CONFLICT (caller_id, key) DO UPDATE
            SET request_hash = EXCLUDED.request_hash, response_status = 0, response_body = 'null'::json,
                created_at = now(), expires_at = EXCLUDED.expires_at
          WHERE k.expires_at <= now() AND NOT ${refusalLive('$4', 'k.')}
         RETURNING 1`,
        [context.callerId, context.key, context.requestHash, this.ttlHours],
        tx,
      );
    } catch (error) {
      // lock_timeout while the first request with this key is still running.
      if (pgErrorCode(error) === '55P03') {
        throw new AppError('IDEMPOTENCY_IN_PROGRESS', 'A request with this Idempotency-Key is still in progress');
      }
      throw error;
    }
    if (claimed.length > 0) return null;
    const [row] = await this.db.query<{ request_hash: string; response_status: number; response_body: unknown }>(
      `SELECT request_hash, response_status, response_body FROM idempotency_keys WHERE caller_id = $1 AND key = $2`,
      [context.callerId, context.key],
      tx,
    );
    return replayOf(context, row);
  }

  /** Deletes keys past their retention (a refusal's too); returns how many. Called by the background sweeper. */
  async deleteExpired(limit = 1000): Promise<number> {
    const rows = await this.db.query(
      `DELETE FROM idempotency_keys WHERE ctid IN
         (SELECT ctid FROM idempotency_keys WHERE expires_at <= now() AND NOT ${refusalLive('$2')} LIMIT $1) RETURNING 1`,
      [limit, this.ttlHours],
    );
    return rows.length;
  }
}

/**
 * Refusals that answer the request, stored like responses: what the state said about it (credits, budgets,
 * debt, a session that ended or does not exist, a value or model it cannot take, a role). Not CONFLICT
 * (it says "finish that first, then retry"), nor the edge's refusals (rate limits, authentication, keys),
 * nor any 5xx: those are retried.
 */
const STORED_REFUSALS: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'INSUFFICIENT_CREDITS',
  'BUDGET_EXCEEDED',
  'UNPAID_LIMIT',
  'SESSION_NOT_ACTIVE',
  'NOT_FOUND',
  'VALIDATION_ERROR',
  'UNKNOWN_MODEL',
  'FORBIDDEN',
]);

/**
 * SQL: a stored refusal (written with expires_at at its commit, see the class comment) is live until its
 * created_at plus the TTL, the same deadline a response gets. `ttlHours` names the statement's parameter.
 */
const refusalLive = (ttlHours: string, row = '') =>
  `(${row}response_status >= 400 AND ${row}created_at > now() - make_interval(hours => ${ttlHours}))`;

/** A stored answer as it is replayed: the response, or the refusal to throw (marked as a replay); 422 for another request. */
function replayOf(context: IdempotencyContext, row: { request_hash: string; response_status: number; response_body: unknown }): Outcome | AppError {
  if (row.request_hash !== context.requestHash) {
    throw new AppError('IDEMPOTENCY_KEY_REUSED', 'This Idempotency-Key was used with a different request');
  }
  if (row.response_status >= 400) {
    const { error } = row.response_body as { error: { code: ErrorCode; message: string; details: Record<string, unknown> } };
    const refusal = new AppError(error.code, error.message, error.details);
    refusal.replayed = true;
    return refusal;
  }
  return { effect: effectOfStatus(row.response_status), body: row.response_body, replayed: true };
}
