import crypto from 'node:crypto';
import type { Transaction } from 'sequelize';
import type { Config } from '../config';
import type { Database } from '../db/database';
import { ledgerOf, type LedgerSession } from '../ledger/ledger';
import { isConnectionError, isPoolExhausted } from '../db/database';
import { AppError } from '../lib/errors';
import { Metrics } from '../lib/metrics';
import { fromDb, toCredits, type Micro } from '../lib/money';
import { cursorPgTime, decodeCursor, encodeCursor, invalidCursor } from '../schemas/common';
import { idProblem } from '../schemas/text';
import type { TokenUsage } from '../metering/tokens';
import {
  abortHasCounts,
  actualOf,
  estimateOf,
  type AbortSessionBody,
  type ExtendSessionBody,
  type FinalizeSessionBody,
  type InitializeSessionBody,
} from '../schemas/streaming-session.schemas';
import type { CreditService } from './credit.service';
import { SweeperBackoff, type SweepFailureLog } from './sweeper-backoff';
import type { IdempotencyContext, IdempotencyService, Outcome } from './idempotency.service';
import { assertRequestCost, type PriceService } from './price.service';
import type { TokenUser, UserAccountService, Caller } from './user-account.service';


export interface SessionView {
  sessionId: string;
  modelId: string;
  status: 'active' | 'completed' | 'aborted' | 'expired';
  estimatedCredits: number;
  allocatedCredits: number;
  priceVersion: number;
  expiresAt: string;
}

export interface SettledView {
  sessionId: string;
  status: 'completed' | 'aborted';
  allocatedCredits: number;
  usedCredits: number;
  refundedCredits: number;
  unpaidCredits: number;
}

export interface ActiveSessionView extends Omit<SessionView, 'status'> {
  status: 'active';
  createdAt: string;
  userId?: string;
}

interface ActiveRow {
  id: string;
  user_id: string;
  model_id: string;
  price_version: number;
  estimated_credits: string;
  allocated_credits: string;
  expires_at: Date;
  created_at: Date;
  created_key: string;
}

const SWEEPER_ACTOR = 'system:session-sweeper';
const MAX_CACHED_PRICINGS = 100_000;

const sessionNotFound = () => new AppError('NOT_FOUND', 'Session not found');

/**
 * Streaming sessions as two-phase holds (TigerBeetle's pending transfers). initialize holds the estimate,
 * finalize captures the real cost and releases the rest, abort captures what was streamed; the sweeper
 * expires holds past their TTL. Each operation is one PL/pgSQL function called with one statement in
 * autocommit (one round trip); this class validates, prices, authorizes and maps outcomes.
 */
export class StreamingSessionService {
  /**
   * Model and price version of sessions this process opened and has not seen end. Both never change for a
   * session id, so the cache cannot go stale; on a miss (a session opened by another instance, or a replay
   * of an ended one) finalize reads them first.
   */
  private readonly pricing = new Map<string, { modelId: string; priceVersion: number }>();
  private readonly ledger;

  constructor(
    private readonly db: Database,
    private readonly credits: CreditService,
    private readonly prices: PriceService,
    private readonly config: Config,
    private readonly idempotency?: IdempotencyService,
    private readonly metrics: Metrics = new Metrics(),
    private readonly users?: UserAccountService,
  ) {
    this.ledger = ledgerOf(db);
  }

  get maxTtlSeconds(): number {
    return this.config.SESSION_MAX_TTL_SECONDS;
  }

  /** POST /initialize: holds the estimate. 201 when created, 200 when the same request is replayed. */
  async initializeSession(caller: Caller | TokenUser, body: InitializeSessionBody, idem?: IdempotencyContext): Promise<Outcome<SessionView>> {
    const price = await this.prices.current(body.modelId);
    const { credits: estimate, tokens } = await this.credits.resolveCost(
      body.estimatedCredits,
      async () => price,
      () => estimateOf(body),
      ['estimatedInputTokens', 'estimatedOutputTokens'],
    );
    // The prompt side alone (for the charge_estimated_input expiry policy).
    const estimatedInputCredits = tokens
      ? this.credits.calculateCreditsForTokens(price, { ...tokens, outputTokens: 0, reasoningTokens: 0 }).total
      : null;
    const id = body.sessionId ?? crypto.randomUUID();
    const ttl = body.ttlSeconds ?? this.config.SESSION_TTL_SECONDS;

    const unpaidLimit = this.config.UNPAID_LIMIT_CREDITS ?? null;

    // The route skips the auth middleware's mirror upsert (mirrorsUser): unless this process mirrored these
    // claims lately, the statement that opens the session mirrors the caller too — one round trip for both.
    const mirror = this.users && 'email' in caller ? this.users.pendingMirror(caller) : null;
    // A budget refusal is raised inside the statement (BUDGET_EXCEEDED; nothing held).
    const response = await this.run(idem, async (tx) => {
      // Priced above through calculateCreditsForTokens; the hold itself is CreditService.deductCredits (one statement).
      const result = await this.credits.deductCredits(
        {
          sessionId: id,
          userId: caller.userId,
          modelId: price.modelId,
          priceVersion: price.priceVersion,
          estimatedInputTokens: tokens?.inputTokens ?? null,
          estimatedOutputTokens: tokens?.outputTokens ?? null,
          estimate,
          estimatedInputCredits,
          requestHash: initializeHash(body, tokens),
          ttlSeconds: ttl,
          unpaidLimit,
          mirror: mirror ? { email: mirror.email, username: mirror.username, role: mirror.role, orgId: mirror.orgId ?? null } : null,
        },
        tx,
      );
      switch (result.outcome) {
        case 'created':
        case 'replayed': {
          const session = result.session;
          this.remember(session.userId, session.id, session.modelId, session.priceVersion);
          if (result.outcome === 'created') afterCommit(tx, () => this.metrics.recordCredits('held', session.allocated));
          return { effect: result.outcome === 'created' ? 'created' : 'done', body: sessionView(session) };
        }
        case 'insufficient':
          throw new AppError('INSUFFICIENT_CREDITS', 'Available credits do not cover the estimate', {
            requiredCredits: toCredits(estimate),
            availableCredits: toCredits(result.availableCredits),
          });
        case 'reused':
          throw new AppError('IDEMPOTENCY_KEY_REUSED', 'This sessionId was used with a different request');
      }
    });
    // Only once committed: inside an idempotency transaction the mirror could still roll back.
    if (mirror) this.users!.markSynced(mirror);
    return response;
  }

  /** POST /finalize: captures the real cost at the session's price version, releases the rest. */
  async finalizeSession(caller: Caller, body: FinalizeSessionBody, idem?: IdempotencyContext): Promise<Outcome<SettledView>> {
    const owner = ownerOf(caller, body.userId);
    const { pricing, cost, tokens } = await this.actualCost(owner, body);
    return this.settle(caller, owner, 'finalize', body.sessionId, pricing, cost, tokens, null, idem);
  }

  /** POST /abort: captures what was streamed (when token counts are given) and releases the rest. */
  async abortSession(caller: Caller, body: AbortSessionBody, idem?: IdempotencyContext): Promise<Outcome<SettledView>> {
    const owner = ownerOf(caller, body.userId);
    if (!abortHasCounts(body)) return this.settle(caller, owner, 'abort', body.sessionId, null, null, null, body.reason ?? null, idem);
    const { pricing, cost, tokens } = await this.actualCost(owner, body);
    return this.settle(caller, owner, 'abort', body.sessionId, pricing, cost, tokens, body.reason ?? null, idem);
  }

  /** The real cost of a finalize/abort: its token counts at the session's own price version. */
  private async actualCost(owner: string, body: FinalizeSessionBody | AbortSessionBody) {
    const pricing = await this.pricingOf(owner, body.sessionId);
    if (!pricing) throw sessionNotFound();
    const tokens = actualOf(body);
    const price = await this.prices.version(pricing.modelId, pricing.priceVersion);
    const cost = this.credits.calculateCreditsForTokens(price, tokens).total;
    assertRequestCost(cost, ['actualInputTokens', 'actualOutputTokens']);
    return { pricing, cost, tokens };
  }

  /**
   * POST /extend: a new TTL and/or a larger hold for an active session, atomically (one ledger statement).
   * 402 (BUDGET_EXCEEDED or INSUFFICIENT_CREDITS) leaves the hold as it was; an ended session is
   * SESSION_NOT_ACTIVE; another user's is NOT_FOUND.
   */
  async extend(caller: Caller, body: ExtendSessionBody, idem?: IdempotencyContext): Promise<Outcome<SessionView>> {
    const owner = ownerOf(caller, body.userId);
    let additional: Micro | null = body.additionalCredits ?? null;
    if (body.additionalOutputTokens !== undefined) {
      const pricing = await this.pricingOf(owner, body.sessionId);
      if (!pricing) throw sessionNotFound();
      const price = await this.prices.version(pricing.modelId, pricing.priceVersion);
      additional = this.credits.calculateCreditsForTokens(price, { inputTokens: 0, outputTokens: body.additionalOutputTokens }).total;
    }
    return this.run(idem, async (tx) => {
      const result = await this.ledger.extendSession(
        {
          sessionId: body.sessionId,
          callerId: caller.userId,
          isAdmin: caller.role === 'admin',
          ttlSeconds: body.ttlSeconds ?? null,
          additional,
          ownerId: owner,
        },
        tx,
      );
      switch (result.outcome) {
        case 'extended':
          if (additional && additional > 0n) afterCommit(tx, () => this.metrics.recordCredits('held', additional));
          return { effect: 'done', body: sessionView(result.session) };
        case 'insufficient':
          throw new AppError('INSUFFICIENT_CREDITS', 'Available credits do not cover the larger hold; the session is unchanged', {
            requiredCredits: toCredits(additional ?? 0n),
            availableCredits: toCredits(result.availableCredits),
          });
        case 'not_found':
          throw sessionNotFound();
        case 'not_active':
          throw new AppError('SESSION_NOT_ACTIVE', `Session is already ${result.status}`, { sessionId: body.sessionId, status: result.status });
      }
    });
  }

  /** GET /active: the caller's active sessions, oldest first. */
  async getActiveSessions(userId: string, limit: number, cursor?: string) {
    return this.listActiveWhere(limit, cursor, userId);
  }

  /** GET /active/all (admin): every active session, oldest first, with its user. */
  async getAllActiveSessions(limit: number, cursor?: string) {
    return this.listActiveWhere(limit, cursor, undefined);
  }

  /**
   * Expires up to `limit` overdue sessions, one per transaction (each expiry is one ledger
   * statement in autocommit), under SESSION_EXPIRY_POLICY. Safe to run in many instances at once.
   * Returns how many it expired; stops early when nothing (claimable) is left.
   */
  async expireOverdue(limit = 100, log?: SweepFailureLog): Promise<number> {
    const backoff = new SweeperBackoff(this.db, this.metrics);
    const item = 'json_build_array(ss.user_id, ss.id)::text';
    let expired = 0;
    while (expired < limit) {
      // Candidates oldest first, skipping sessions whose expiry failed lately (sweeper_backoff).
      const candidates = await this.db.query<{ user_id: string; id: string; item: string; failing: boolean }>(
        `SELECT ss.user_id, ss.id, ${item} AS item,
                EXISTS (SELECT 1 FROM sweeper_backoff b WHERE b.job = 'session_expiry' AND b.item = ${item}) AS failing
           FROM streaming_sessions ss
          WHERE ss.status = 'active' AND ss.expires_at < now() AND ${SweeperBackoff.notWaiting('session_expiry', item)}
          ORDER BY ss.expires_at
          LIMIT $1`,
        [Math.min(100, limit - expired)],
      );
      let progressed = 0;
      for (const candidate of candidates) {
        try {
          const ended = await this.ledger.expireSession({
            policy: this.config.SESSION_EXPIRY_POLICY,
            actor: SWEEPER_ACTOR,
            userId: candidate.user_id,
            sessionId: candidate.id,
          });
          if (candidate.failing) await backoff.succeeded('session_expiry', candidate.item);
          if (!ended) continue; // another sweeper has it, or it ended meanwhile
          expired++;
          progressed++;
          await this.countExpiry(ended.userId, ended.sessionId);
        } catch (error) {
          // The database itself is gone: the whole run fails and is retried on the next tick.
          if (isConnectionError(error) || isPoolExhausted(error)) throw error;
          await backoff.failed('session_expiry', candidate.item, error, log);
        }
      }
      if (progressed === 0) break;
    }
    return expired;
  }

  private async settle(
    caller: Caller,
    owner: string,
    action: 'finalize' | 'abort',
    sessionId: string,
    pricing: { modelId: string; priceVersion: number } | null,
    cost: Micro | null,
    tokens: TokenUsage | null,
    reason: string | null,
    idem?: IdempotencyContext,
  ): Promise<Outcome<SettledView>> {
    return this.run(idem, async (tx) => {
      const result = await this.ledger.settleSession(
        {
          sessionId,
          callerId: caller.userId,
          isAdmin: caller.role === 'admin',
          action,
          modelId: pricing?.modelId ?? null,
          priceVersion: pricing?.priceVersion ?? null,
          cost,
          tokens,
          reason,
          ownerId: owner,
        },
        tx,
      );
      switch (result.outcome) {
        case 'settled':
        case 'replayed':
          if (result.outcome === 'settled') afterCommit(tx, () => this.countSettlement(result.session));
          // An ended session needs its pricing no more (a replay reads it again): the cache then holds the
          // sessions this process has open, not its whole history.
          this.pricing.delete(pricingKey(owner, sessionId));
          return { effect: 'done', body: settledView(result.session) };
        case 'not_found':
          throw sessionNotFound();
        case 'not_active':
          throw new AppError('SESSION_NOT_ACTIVE', `Session is already ${result.status}`, { sessionId, status: result.status });
      }
    });
  }

  /**
   * Runs one operation. Without an Idempotency-Key it is a single autocommit statement (one round trip);
   * with one, it runs inside the key's transaction so that the stored response and the work commit
   * together (a refusal is stored as the answer; other failures roll both back: IdempotencyService.run).
   */
  private run<T>(idem: IdempotencyContext | undefined, work: (tx?: Transaction) => Promise<Outcome<T>>) {
    if (idem && this.idempotency) return this.idempotency.run(idem, (tx) => work(tx));
    return work();
  }

  /** Metrics of a settled session: the hold split into captured and released, plus overage charged or unpaid. */
  private countSettlement(session: Pick<LedgerSession, 'allocated' | 'refunded' | 'unpaid' | 'used'>): void {
    const { allocated, refunded: released, unpaid } = session;
    const captured = allocated - released;
    const charged = session.used - captured - unpaid;
    this.metrics.recordCredits('captured', captured);
    this.metrics.recordCredits('released', released);
    if (charged > 0n) this.metrics.recordCredits('charged', charged);
    this.metrics.recordCredits('unpaid', unpaid);
  }

  /** Metrics of an expired session (read after its own committed statement; only the sweeper pays this). */
  private async countExpiry(userId: string, sessionId: string): Promise<void> {
    this.metrics.sessionsExpired.inc();
    const [row] = await this.db.query<{ allocated_credits: string; used_credits: string | null; refunded_credits: string | null; unpaid_credits: string }>(
      `SELECT allocated_credits, used_credits, refunded_credits, unpaid_credits FROM streaming_sessions WHERE user_id = $1 AND id = $2`,
      [userId, sessionId],
    );
    if (row) {
      this.countSettlement({
        allocated: fromDb(row.allocated_credits),
        refunded: fromDb(row.refunded_credits),
        unpaid: fromDb(row.unpaid_credits),
        used: fromDb(row.used_credits),
      });
    }
  }

  private async pricingOf(owner: string, sessionId: string): Promise<{ modelId: string; priceVersion: number } | null> {
    const cached = this.pricing.get(pricingKey(owner, sessionId));
    if (cached) return cached;
    const [row] = await this.db.query<{ model_id: string; price_version: number }>(
      `SELECT model_id, price_version FROM streaming_sessions WHERE user_id = $1 AND id = $2`,
      [owner, sessionId],
    );
    if (!row) return null;
    this.remember(owner, sessionId, row.model_id, row.price_version);
    return { modelId: row.model_id, priceVersion: row.price_version };
  }

  private remember(owner: string, sessionId: string, modelId: string, priceVersion: number): void {
    if (this.pricing.size >= MAX_CACHED_PRICINGS) this.pricing.clear();
    this.pricing.set(pricingKey(owner, sessionId), { modelId, priceVersion });
  }

  private async listActiveWhere(limit: number, cursor: string | undefined, userId: string | undefined) {
    const after = decodeCursor(cursor);
    const bind: unknown[] = [limit + 1];
    const where = [`status = 'active'`];
    if (userId !== undefined) {
      bind.push(userId);
      where.push(`user_id = $${bind.length}`);
    }
    if (after) {
      // created_at as PostgreSQL prints it in UTC (exact to the microsecond, unlike a JS Date), then the key.
      const valid =
        after.length === 3 &&
        cursorPgTime(after[0]) !== null &&
        after.slice(1).every((key) => typeof key === 'string' && idProblem(key) === null);
      if (!valid) throw invalidCursor();
      bind.push(after[0], after[1], after[2]);
      where.push(`(created_at, user_id, id) > ($${bind.length - 2}::timestamptz, $${bind.length - 1}, $${bind.length})`);
    }
    const rows = await this.db.read<ActiveRow>(
      `SELECT id, user_id, model_id, price_version, estimated_credits, allocated_credits, expires_at, created_at,
              created_at::text AS created_key
         FROM streaming_sessions
        WHERE ${where.join(' AND ')}
        ORDER BY created_at, user_id, id
        LIMIT $1`,
      bind,
    );
    const pageRows = rows.slice(0, limit);
    const last = pageRows[pageRows.length - 1];
    return {
      data: pageRows.map((row) => ({
        sessionId: row.id,
        ...(userId === undefined ? { userId: row.user_id } : {}),
        modelId: row.model_id,
        status: 'active' as const,
        estimatedCredits: toCredits(fromDb(row.estimated_credits)),
        allocatedCredits: toCredits(fromDb(row.allocated_credits)),
        priceVersion: row.price_version,
        expiresAt: row.expires_at.toISOString(),
        createdAt: row.created_at.toISOString(),
      })),
      nextCursor: rows.length > limit && last ? encodeCursor([last.created_key, last.user_id, last.id]) : null,
    };
  }
}

/** Whose session a finalize/abort is about: the caller's, or (admins only) the user the body names. */
function ownerOf(caller: Caller, requested: string | undefined): string {
  if (requested === undefined || requested === caller.userId) return caller.userId;
  // Anyone else naming another user gets what a foreign session id gets: not found (nothing is revealed).
  if (caller.role !== 'admin') throw sessionNotFound();
  return requested;
}

/** Session ids are unique per user only, so caches key them by owner and id. */
// Neither part can hold a NUL (token subjects and session ids are checked printable), so the pair is unambiguous.
const pricingKey = (owner: string, sessionId: string) => `${owner}\u0000${sessionId}`;

/**
 * What makes two initialize requests "the same": everything but the id, normalized (1 = "1.000000";
 * providerUsage as the counts it maps to). Parts are appended only when present, so hashes of requests
 * without them are unchanged.
 */
function initializeHash(body: InitializeSessionBody, tokens: TokenUsage | null): string {
  const parts = tokens ? [tokens.cachedInputTokens, tokens.cacheWriteTokens, tokens.cacheWrite1hTokens, tokens.reasoningTokens] : [];
  const canonical = JSON.stringify([
    body.modelId,
    tokens?.inputTokens ?? null,
    tokens?.outputTokens ?? null,
    body.estimatedCredits?.toString() ?? null,
    body.ttlSeconds ?? null,
    ...(parts.some((n) => n > 0) ? [parts] : []),
  ]);
  return sha256Hex(canonical);
}

// One-shot hashing (Node >= 20.12) skips the Hash object per call; the digest is the same.
const sha256Hex: (text: string) => string =
  typeof crypto.hash === 'function' ? (text) => crypto.hash('sha256', text, 'hex') : (text) => crypto.createHash('sha256').update(text).digest('hex');

function sessionView(session: LedgerSession): SessionView {
  return {
    sessionId: session.id,
    modelId: session.modelId,
    status: session.status,
    estimatedCredits: toCredits(session.estimated),
    allocatedCredits: toCredits(session.allocated),
    priceVersion: session.priceVersion,
    expiresAt: session.expiresAt.toISOString(),
  };
}

function settledView(session: LedgerSession): SettledView {
  return {
    sessionId: session.id,
    status: session.status as SettledView['status'],
    allocatedCredits: toCredits(session.allocated),
    usedCredits: toCredits(session.used),
    refundedCredits: toCredits(session.refunded),
    unpaidCredits: toCredits(session.unpaid),
  };
}

/** Runs `count` once the work is durable: after the transaction commits, or now for an autocommit statement. */
function afterCommit(tx: Transaction | undefined, count: () => void): void {
  if (tx) tx.afterCommit(count);
  else count();
}
