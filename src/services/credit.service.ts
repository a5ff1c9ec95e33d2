import type { Transaction } from 'sequelize';
import { isConnectionError, isPoolExhausted, type Database } from '../db/database';
import { forbidden, notFound } from '../lib/errors';
import { Metrics } from '../lib/metrics';
import { countFromDb, fromDb, toCredits, type Micro } from '../lib/money';
import { cursorBigint, decodeKeyCursor, encodeCursor } from '../schemas/common';
import { SweeperBackoff, type SweepFailureLog } from './sweeper-backoff';
import {
  EXPIRING_SOON_DAYS,
  toAllocationJson,
  toBalanceJson,
  type AllocateBody,
  type Balance,
  type CalculateBody,
  type CheckBody,
  type Lot,
  type LedgerType,
  type TransactionsQuery,
  usageOfBody,
} from '../schemas/credit.schemas';
import type { IdempotencyContext, IdempotencyService, Outcome } from './idempotency.service';
import type { BudgetService } from './budget.service';
import { assertRequestCost, costAt, type Cost, type ModelPrice, type PriceService, type TokenCounts } from './price.service';
import { type TokenUser, type UserAccountService, type Caller } from './user-account.service';
import { ledgerOf, signedAmountSql, type LotRow, type OpenSessionArgs, type OpenSessionOutcome } from '../ledger/ledger';

export type { LotRow } from '../ledger/ledger';


export const toLot = (row: LotRow): Lot => ({
  id: String(row.id),
  userId: row.user_id,
  total: fromDb(row.total_credits),
  remaining: fromDb(row.remaining_credits),
  allocatedBy: row.allocated_by,
  expiresAt: row.expires_at,
  createdAt: row.created_at,
  note: row.note,
});

/** The body fields check and calculate name when a cost is above the one-request bound (they price inputTokens/outputTokens). */
const COUNT_FIELDS = ['inputTokens', 'outputTokens'];

/** How far back a regular expiry sweep looks; older leftovers are caught by a full sweep (see expireLots). */
const EXPIRY_SWEEP_WINDOW_MS = 60 * 60 * 1000;

/**
 * Balances, lots, grants and the ledger. Every money movement locks the user's row first, then lots in
 * consumption order, inside the PL/pgSQL primitives (migrations/*_initial_schema and *_credits), so each
 * operation is one statement and one round trip.
 */
/**
 * A checkpoint more than this many transactions behind the current snapshot is not used: xmin is a 32-bit xid
 * compared through age() (Ledger.reconcileChanged), exact only within 2^31 transactions. A checkpoint past the
 * snapshot's xmax (one more than the newest ended transaction; a run's horizon is never past it, and xmax
 * never goes back) is not from this server's past (a restored dump starts its xids anew) and is not used
 * either. Either way the run is a full one.
 *
 * A checkpoint ahead of this snapshot's horizon (but not past its xmax) is used: every transaction below the
 * checkpoint had ended, or was known to be another database's, when it was taken, and both stay true; the
 * horizon is lower only because a transaction of another database is running that this run could not
 * place (it ended before the horizon's read, or this role cannot see it). The checkpoint never moves back.
 */
const MAX_CHECKPOINT_XIDS = 1_000_000_000n;

function usableCheckpoint(checkpointXmin: bigint, snapshot: { snapshotXmin: bigint; snapshotXmax: bigint }): boolean {
  return checkpointXmin <= snapshot.snapshotXmax && snapshot.snapshotXmin - checkpointXmin <= MAX_CHECKPOINT_XIDS;
}

export class CreditService {
  private lastFullExpirySweep = 0;
  private readonly ledger;

  constructor(
    private readonly db: Database,
    private readonly users: UserAccountService,
    private readonly idempotency: IdempotencyService,
    private readonly prices: PriceService,
    private readonly metrics: Metrics = new Metrics(),
    private readonly budgets?: BudgetService,
    /** New credits pay the oldest unpaid usage first (SETTLE_UNPAID_ON_GRANT; the ledger's settle-unpaid function). */
    private readonly settleUnpaidOnGrant = true,
    /** Limit per statement of a reconcile run (RECONCILE_STATEMENT_TIMEOUT_MS). */
    private readonly reconcileTimeoutMs = 600_000,
  ) {
    this.ledger = ledgerOf(db);
  }

  // ---------- for other services ----------

  /**
   * The cost of token counts at a price version: the one pricing rule (costAt, price.service.ts), rounded up
   * to the micro-credit. Every estimate, finalize, abort, extend, check, calculate and usage record prices here.
   */
  calculateCreditsForTokens(price: ModelPrice, tokens: TokenCounts): Cost {
    return costAt(price, tokens);
  }

  /**
   * What an operation costs: the credits the caller gave, or else its tokens priced (calculateCreditsForTokens)
   * at the price `priceOf` looks up — the one place that chooses between the two. With `bound` (the token
   * fields of the request), a priced cost above the one-request limit is a VALIDATION_ERROR naming them.
   */
  async resolveCost<T extends TokenCounts>(
    given: Micro | undefined,
    priceOf: () => Promise<ModelPrice>,
    tokensOf: () => T,
    bound?: string[],
  ): Promise<{ credits: Micro; price: ModelPrice; tokens: T } | { credits: Micro; price: null; tokens: null }> {
    if (given !== undefined) return { credits: given, price: null, tokens: null };
    const price = await priceOf();
    const tokens = tokensOf();
    const credits = this.calculateCreditsForTokens(price, tokens).total;
    if (bound) assertRequestCost(credits, bound);
    return { credits, price, tokens };
  }

  /**
   * Moves credits into a hold for a new streaming session (StreamingSessionService.initializeSession): one
   * ledger statement checks the budgets and the unpaid limit, locks the user, checks that available credits
   * cover the estimate, opens the session and draws the hold from lots in consumption order — all or nothing,
   * one round trip. Without `tx` it is a prepared statement in autocommit.
   */
  async deductCredits(request: OpenSessionArgs, tx?: Transaction): Promise<OpenSessionOutcome> {
    return this.ledger.openSession(request, tx);
  }

  /** Available micro-credits (unexpired lots only). */
  async availableCredits(userId: string, tx?: Transaction): Promise<Micro> {
    return this.ledger.available(userId, tx);
  }

  /**
   * The caller's own balance (GET /api/credits/balance): one prepared statement, one round trip, which
   * also mirrors the caller into user_accounts when this process has not lately (RouteSpec.mirrorsUser).
   */
  async getUserBalance(caller: TokenUser): Promise<Balance> {
    const mirror = this.users.pendingMirror(caller);
    const balance = await this.getBalance(caller.userId, undefined, mirror);
    if (mirror) this.users.markSynced(mirror);
    return balance;
  }

  /** The balance of a user (zero everywhere for a user without lots). One statement, one snapshot (the ledger's balance function). */
  async getBalance(userId: string, tx?: Transaction, mirror?: TokenUser | null): Promise<Balance> {
    const rows = await this.ledger.balance({ userId, soonDays: EXPIRING_SOON_DAYS, mirror: mirror ?? null }, tx);
    const soonBefore = rows[0].soon_before;
    const allocations = rows.filter((row): row is LotRow & typeof row => row.id !== null).map(toLot);
    const sum = (lots: Lot[]) => lots.reduce((total, lot) => total + lot.remaining, 0n);
    return {
      userId,
      orgId: rows[0].org_id,
      budgets: rows[0].budgets,
      available: sum(allocations),
      reserved: fromDb(rows[0].reserved),
      unpaid: fromDb(rows[0].unpaid),
      expiringSoon: {
        credits: sum(allocations.filter((lot) => lot.expiresAt !== null && lot.expiresAt <= soonBefore)),
        before: soonBefore,
      },
      allocations,
    };
  }

  // ---------- endpoints ----------

  /** Another user's balance; NOT_FOUND for a user this service has never seen. */
  async getBalanceOf(userId: string): Promise<Balance> {
    if (!(await this.users.userExists(userId))) throw notFound('User');
    return this.getBalance(userId);
  }

  /** Would `credits` (or the cost of these tokens at the current price) be covered right now? */
  async checkUserCredits(userId: string, body: CheckBody): Promise<{ sufficient: boolean; required: Micro; available: Micro; limitedBy?: object }> {
    const { credits: required } = await this.resolveCost(body.credits, () => this.prices.current(body.modelId!), () => usageOfBody(body), COUNT_FIELDS);
    const available = await this.availableCredits(userId);
    // Budgets (docs/budgets.md): the same test initialize makes, as a read.
    const refusal = this.budgets ? await this.budgets.refusal(userId, body.modelId ?? null, required) : null;
    if (refusal) return { sufficient: false, required, available, limitedBy: { code: 'BUDGET_EXCEEDED', ...refusal } };
    return { sufficient: available >= required, required, available };
  }

  /** Cost of tokens at the model's current price, rounded up to the micro-credit. */
  async calculate(body: CalculateBody) {
    const price = await this.prices.current(body.modelId);
    const tokens = usageOfBody(body);
    const cost = this.calculateCreditsForTokens(price, tokens);
    // A cost no request may have (API.md, "Bounds") is refused here too, not quoted.
    assertRequestCost(cost.total, COUNT_FIELDS);
    return {
      modelId: price.modelId,
      priceVersion: price.priceVersion,
      credits: toCredits(cost.total),
      breakdown: {
        input: toCredits(cost.breakdown.input),
        cachedInput: toCredits(cost.breakdown.cachedInput),
        cacheWrite: toCredits(cost.breakdown.cacheWrite),
        cacheWrite1h: toCredits(cost.breakdown.cacheWrite1h),
        output: toCredits(cost.breakdown.output),
        reasoning: toCredits(cost.breakdown.reasoning),
      },
    };
  }

  /**
   * Grants a new lot to a user (created if unknown), allocated by the caller. Idempotent under the
   * caller's Idempotency-Key: the key is stored in the same transaction as the grant.
   */
  async allocateCredits(callerId: string, body: AllocateBody, idempotency: IdempotencyContext | undefined): Promise<Outcome> {
    return this.idempotency.run(idempotency, async (tx) => {
      const row = await this.ledger.allocate(
        {
          userId: body.userId,
          amount: body.credits,
          expiresAt: body.expiresAt ?? null,
          expiresInDays: body.expiresInDays ?? null,
          actorId: callerId,
          note: body.note ?? null,
        },
        tx,
      );
      tx.afterCommit(() => this.metrics.recordCredits('granted', body.credits));
      if (this.settleUnpaidOnGrant) {
        // Still under the user's row lock taken by the grant (same transaction).
        await this.ledger.settleUnpaid({ userId: body.userId, max: body.credits, actorId: callerId }, tx);
      }
      const balance = await this.getBalance(body.userId, tx);
      return { effect: 'created', body: { allocation: toAllocationJson(toLot(row)), balance: toBalanceJson(balance) } };
    });
  }

  /** The ledger of a user, newest first. Users see their own; supervisors and admins anyone's. */
  async listTransactions(caller: Caller, query: TransactionsQuery) {
    const userId = query.userId ?? caller.userId;
    if (userId !== caller.userId) {
      if (caller.role === 'user') throw forbidden('Only supervisors and admins may read other users\u2019 transactions');
      if (!(await this.users.userExists(userId))) throw notFound('User');
    }
    const before = this.ledgerCursor(query.cursor);
    const rows = await this.db.read<{
      id: string;
      type: LedgerType;
      amount: string;
      balance_change: string;
      allocation_id: string | null;
      session_id: string | null;
      usage_record_id: string | null;
      actor_id: string | null;
      note: string | null;
      created_at: Date;
    }>(
      `SELECT id, type, amount, ${signedAmountSql('type', 'amount')} AS balance_change, allocation_id, session_id,
              usage_record_id, actor_id, note, created_at
         FROM credit_transactions
        WHERE user_id = $1 AND ($2::bigint IS NULL OR id < $2::bigint)
        ORDER BY id DESC
        LIMIT $3`,
      [userId, before, query.limit + 1],
    );
    const pageRows = rows.slice(0, query.limit);
    const data = pageRows.map((row) => {
      const amount = fromDb(row.amount);
      return {
        id: String(row.id),
        type: row.type,
        credits: toCredits(amount < 0n ? -amount : amount),
        balanceChange: toCredits(fromDb(row.balance_change)),
        allocationId: row.allocation_id === null ? null : String(row.allocation_id),
        sessionId: row.session_id,
        usageRecordId: row.usage_record_id === null ? null : String(row.usage_record_id),
        actorId: row.actor_id,
        note: row.note,
        createdAt: row.created_at.toISOString(),
      };
    });
    const nextCursor = rows.length > query.limit ? encodeCursor([data[data.length - 1].id]) : null;
    return { data, nextCursor };
  }

  /**
   * Recomputes lots, hold legs, usage records and budget counters from the ledger and lists each difference
   * (docs/credits.md "Reconcile"). `full` checks every user; `incremental` only the users (and budgets) with a
   * row written since the last clean run's snapshot, the checkpoint (a full run when there is none, when it is
   * too old to compare xids with, or after a TRUNCATE); `userId` one user at full depth (404 for a user never
   * seen). Every check of a run reads one REPEATABLE READ snapshot. A clean full or incremental run moves the
   * checkpoint to its snapshot; a run that finds differences leaves it and notes their users and budgets, so
   * that incremental runs keep checking them until they are clean.
   */
  async reconcile(options: { mode?: 'full' | 'incremental'; userId?: string } = {}) {
    const elsewhereBefore = options.userId === undefined ? await this.ledger.otherDatabasesTransactions() : [];
    const run = await this.db.transaction(async (tx) => {
      const snapshot = await this.ledger.reconcileSnapshot(this.reconcileTimeoutMs, tx, elsewhereBefore);
      if (options.userId !== undefined) {
        if (!(await this.db.models.UserAccount.count({ where: { id: options.userId }, transaction: tx }))) throw notFound('User');
        return {
          mode: 'user' as const,
          since: null,
          snapshot,
          rows: await this.ledger.reconcileUsers([options.userId], tx),
          budgetRows: await this.ledger.reconcileBudgetsFor([options.userId], [], tx),
          dirtyIds: [],
        };
      }
      const checkpoint = snapshot.checkpoint;
      if (options.mode === 'incremental' && checkpoint && usableCheckpoint(checkpoint.snapshotXmin, snapshot)) {
        const changed = await this.ledger.reconcileChanged(checkpoint.snapshotXmin, tx);
        if (!changed.truncated) {
          return {
            mode: 'incremental' as const,
            since: checkpoint.takenAt,
            snapshot,
            rows: await this.ledger.reconcileUsers(changed.users, tx),
            budgetRows: await this.ledger.reconcileBudgetsFor(changed.users, changed.budgets, tx),
            dirtyIds: changed.dirtyIds,
          };
        }
      }
      return {
        mode: 'full' as const,
        since: null,
        snapshot,
        rows: await this.ledger.reconcile(tx),
        budgetRows: await this.ledger.reconcileBudgets(tx),
        dirtyIds: await this.ledger.reconcileDirtyIds(tx),
      };
    });
    const { rows, budgetRows } = run;
    const discrepancies = rows
      .filter((row) => row.kind !== null)
      .map((row) => ({
        userId: row.user_id,
        allocationId: row.allocation_id === null ? null : String(row.allocation_id),
        sessionId: row.session_id,
        // Only the usage_* checks are about a usage record.
        ...(row.usage_record_id === null ? {} : { usageRecordId: String(row.usage_record_id) }),
        kind: row.kind!,
        expected: toCredits(fromDb(row.expected)),
        actual: toCredits(fromDb(row.actual)),
      }));
    // Budget counters against the charges that built them (docs/budgets.md).
    for (const row of budgetRows) {
      discrepancies.push({
        userId: null,
        allocationId: null,
        sessionId: row.session_id,
        kind: `${row.kind}:${row.budget_id}`,
        expected: toCredits(fromDb(row.expected)),
        actual: toCredits(fromDb(row.actual)),
      });
    }
    const checkedUsers = countFromDb(rows[0].users);
    if (discrepancies.length > 0) {
      const users = [...new Set(discrepancies.map((d) => d.userId).filter((u): u is string => u !== null))];
      const budgets = [...new Set(budgetRows.map((row) => row.budget_id))];
      await this.ledger.noteReconcileDiscrepancies(users, budgets);
    } else if (run.mode !== 'user') {
      await this.ledger.advanceReconcileCheckpoint({
        snapshotXmin: run.snapshot.snapshotXmin,
        takenAt: run.snapshot.takenAt,
        mode: run.mode,
        checkedUsers,
        dirtyIds: run.dirtyIds,
      });
    }
    return {
      ok: discrepancies.length === 0,
      mode: run.mode,
      since: run.since === null ? null : run.since.toISOString(),
      checkedUsers,
      checkedAllocations: countFromDb(rows[0].allocations),
      discrepancies,
    };
  }

  // ---------- background ----------

  /**
   * Writes 'expire' rows for lots past their expiry that still hold credits, one lot per statement
   * (each its own short transaction, users claimed with SKIP LOCKED: safe in many instances at once).
   * Balances never depend on this having run; it keeps the ledger telling the whole story. A regular
   * sweep only looks at the last hour of expiries; a full sweep runs at start and hourly.
   */
  async expireLots(maxLots = 1000, log?: SweepFailureLog): Promise<number> {
    const now = Date.now();
    const full = now - this.lastFullExpirySweep >= EXPIRY_SWEEP_WINDOW_MS;
    const notBefore = full ? null : new Date(now - EXPIRY_SWEEP_WINDOW_MS);
    const backoff = new SweeperBackoff(this.db, this.metrics);
    let expired = 0;
    let tried = 0;
    while (tried < maxLots) {
      // Candidates in expiry order, skipping lots whose expiry failed lately (sweeper_backoff).
      const candidates = await this.db.query<{ id: string; failing: boolean }>(
        `SELECT a.id::text AS id,
                EXISTS (SELECT 1 FROM sweeper_backoff b WHERE b.job = 'lot_expiry' AND b.item = a.id::text) AS failing
           FROM credit_allocations a
          WHERE a.expires_at <= now() AND a.remaining_credits > 0
            AND ($1::timestamptz IS NULL OR a.expires_at >= $1::timestamptz)
            AND ${SweeperBackoff.notWaiting('lot_expiry', 'a.id::text')}
          ORDER BY a.expires_at, a.id
          LIMIT $2`,
        [notBefore, Math.min(100, maxLots - tried)],
      );
      let progressed = 0;
      for (const candidate of candidates) {
        tried++;
        try {
          const expiredCredits = await this.ledger.expireLot({ notBefore, allocationId: candidate.id });
          if (candidate.failing) await backoff.succeeded('lot_expiry', candidate.id);
          if (expiredCredits === null) continue; // its user is busy (SKIP LOCKED): next tick
          progressed++;
          this.metrics.recordCredits('expired', expiredCredits);
          if (expiredCredits > 0n) expired++;
        } catch (error) {
          if (isConnectionError(error) || isPoolExhausted(error)) throw error;
          await backoff.failed('lot_expiry', candidate.id, error, log);
        }
      }
      if (progressed === 0) break;
    }
    if (full) this.lastFullExpirySweep = now;
    return expired;
  }

  // ---------- internals ----------

  private ledgerCursor(cursor: string | undefined): string | null {
    return decodeKeyCursor(cursor, (key) => cursorBigint(key) !== null);
  }
}
