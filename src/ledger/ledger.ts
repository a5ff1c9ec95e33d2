import type { Transaction } from 'sequelize';
import { pgErrorCode, pgErrorField, type Database } from '../db/database';
import { AppError } from '../lib/errors';
import { fromDb, toCredits, type Micro } from '../lib/money';
import type { TokenUsage } from '../metering/tokens';
import { toBudgetExceededDetails, type BudgetStatusRow } from '../schemas/budget.schemas';
import { mirrorBind, mirrorCte, type MirroredUser } from '../db/user-mirror';

/**
 * The ledger gateway: the one TypeScript module that calls the PL/pgSQL ledger functions
 * (src/ledger/sql). Every method takes named arguments and returns a typed outcome; the argument lists
 * below are PostgreSQL's own (checked against pg_proc by tests/foundation/ledger-gateway.test.ts), and
 * binds are built from them by name, so a call cannot pass its values in the wrong order.
 *
 * Each method sends exactly one statement. Without `tx` the hot-path ones are named prepared statements
 * in autocommit (db.prepared: one round trip, parsed once per connection); with `tx` they join it.
 * Errors the functions raise on purpose (a budget refusal, the unpaid limit) come out as AppErrors.
 */

type PgType = 'text' | 'bigint' | 'integer' | 'boolean' | 'jsonb' | 'timestamp with time zone' | 'text[]' | 'bigint[]';
type Arg = readonly [name: string, type: PgType];

/** Argument lists (name, type) of the ledger functions called from TypeScript, as PostgreSQL declares them. */
export const LEDGER_FUNCTIONS = {
  acct_session_open: [
    ['p_session', 'text'], ['p_user', 'text'], ['p_model', 'text'], ['p_price_version', 'integer'], ['p_est_input', 'bigint'],
    ['p_est_output', 'bigint'], ['p_estimate', 'bigint'], ['p_est_input_credits', 'bigint'], ['p_request_hash', 'text'],
    ['p_ttl_seconds', 'integer'], ['p_unpaid_limit', 'bigint'],
  ],
  acct_session_open_as: [
    ['p_session', 'text'], ['p_user', 'text'], ['p_model', 'text'], ['p_price_version', 'integer'], ['p_est_input', 'bigint'],
    ['p_est_output', 'bigint'], ['p_estimate', 'bigint'], ['p_est_input_credits', 'bigint'], ['p_request_hash', 'text'],
    ['p_ttl_seconds', 'integer'], ['p_email', 'text'], ['p_username', 'text'], ['p_role', 'text'], ['p_org', 'text'],
    ['p_unpaid_limit', 'bigint'],
  ],
  acct_session_extend: [
    ['p_session', 'text'], ['p_caller', 'text'], ['p_is_admin', 'boolean'], ['p_ttl_seconds', 'integer'], ['p_additional', 'bigint'],
    ['p_owner', 'text'],
  ],
  acct_session_settle: [
    ['p_session', 'text'], ['p_caller', 'text'], ['p_is_admin', 'boolean'], ['p_action', 'text'], ['p_model', 'text'],
    ['p_price_version', 'integer'], ['p_cost', 'bigint'], ['p_input', 'bigint'], ['p_output', 'bigint'], ['p_cached', 'bigint'],
    ['p_reason', 'text'], ['p_cache_write', 'bigint'], ['p_cache_write_1h', 'bigint'], ['p_reasoning', 'bigint'], ['p_owner', 'text'],
  ],
  acct_session_expire_one: [['p_policy', 'text'], ['p_actor', 'text'], ['p_user', 'text'], ['p_session', 'text']],
  acct_available: [['p_user', 'text']],
  acct_balance: [['p_user', 'text'], ['p_soon_days', 'integer'], ['p_org', 'text']],
  acct_allocate: [
    ['p_user', 'text'], ['p_amount', 'bigint'], ['p_expires_at', 'timestamp with time zone'], ['p_expires_in_days', 'integer'],
    ['p_actor', 'text'], ['p_note', 'text'],
  ],
  acct_settle_unpaid: [['p_user', 'text'], ['p_max', 'bigint'], ['p_actor', 'text']],
  acct_expire_one_lot: [['p_not_before', 'timestamp with time zone'], ['p_allocation', 'bigint']],
  acct_signed_amount: [['p_type', 'text'], ['p_amount', 'bigint']],
  acct_reconcile: [],
  acct_budget_reconcile: [],
  acct_reconcile_users: [['p_users', 'text[]']],
  acct_budget_reconcile_for: [['p_users', 'text[]'], ['p_budgets', 'bigint[]']],
  acct_reconcile_changed: [['p_since', 'bigint']],
  acct_record_charged_usage: [
    ['p_user', 'text'], ['p_service', 'text'], ['p_operation', 'text'], ['p_model', 'text'], ['p_price_version', 'integer'],
    ['p_input', 'bigint'], ['p_output', 'bigint'], ['p_cached', 'bigint'], ['p_credits', 'bigint'], ['p_metadata', 'jsonb'],
    ['p_actor', 'text'], ['p_cache_write', 'bigint'], ['p_cache_write_1h', 'bigint'], ['p_reasoning', 'bigint'],
    ['p_occurred_at', 'timestamp with time zone'], ['p_unpaid_limit', 'bigint'],
  ],
  acct_adjust: [
    ['p_user', 'text'], ['p_amount', 'bigint'], ['p_expires_at', 'timestamp with time zone'], ['p_actor', 'text'], ['p_reason', 'text'],
    ['p_settle', 'boolean'],
  ],
  acct_revoke: [['p_allocation', 'bigint'], ['p_amount', 'bigint'], ['p_actor', 'text'], ['p_reason', 'text']],
  acct_refund_usage: [['p_record', 'bigint'], ['p_amount', 'bigint'], ['p_actor', 'text'], ['p_reason', 'text']],
  acct_lock_user: [['p_user', 'text']],
  acct_schedule_grant_one: [['p_now', 'timestamp with time zone'], ['p_settle', 'boolean']],
  acct_rerate_user: [
    ['p_user', 'text'], ['p_model', 'text'], ['p_from_version', 'integer'], ['p_to_version', 'integer'],
    ['p_from', 'timestamp with time zone'], ['p_to', 'timestamp with time zone'], ['p_limit', 'integer'], ['p_actor', 'text'],
  ],
  acct_budget_status: [['p_user', 'text'], ['p_org', 'text'], ['p_at', 'timestamp with time zone']],
  acct_budget_refusal: [
    ['p_user', 'text'], ['p_org', 'text'], ['p_model', 'text'], ['p_amount', 'bigint'], ['p_at', 'timestamp with time zone'],
    ['p_lock', 'boolean'],
  ],
  acct_event_emit: [['p_type', 'text'], ['p_user', 'text'], ['p_data', 'jsonb'], ['p_org', 'text']],
  acct_event_expiring: [['p_notice_days', 'integer'], ['p_limit', 'integer']],
  acct_partitions_ensure: [['p_months_ahead', 'integer'], ['p_from', 'timestamp with time zone']],
} as const satisfies Record<string, readonly Arg[]>;

export type LedgerFunction = keyof typeof LEDGER_FUNCTIONS;

/** Result columns the gateway reads from each function (checked against the function's result type). */
export const LEDGER_RESULT_COLUMNS: Record<LedgerFunction, readonly string[]> = {
  acct_session_open: sessionColumns(),
  acct_session_open_as: sessionColumns(),
  acct_session_extend: sessionColumns(),
  acct_session_settle: sessionColumns(),
  acct_session_expire_one: ['expired_user_id', 'expired_session_id'],
  acct_available: [],
  acct_balance: [
    'reserved', 'unpaid', 'soon_before', 'org_id', 'budgets', 'id', 'user_id', 'total_credits', 'remaining_credits', 'allocated_by',
    'expires_at', 'created_at', 'note',
  ],
  acct_allocate: ['id', 'user_id', 'total_credits', 'remaining_credits', 'allocated_by', 'expires_at', 'created_at', 'note'],
  acct_settle_unpaid: [],
  acct_expire_one_lot: ['expired_credits'],
  acct_signed_amount: [],
  acct_reconcile: ['user_id', 'allocation_id', 'session_id', 'usage_record_id', 'kind', 'expected', 'actual'],
  acct_budget_reconcile: ['budget_id', 'session_id', 'kind', 'expected', 'actual'],
  acct_reconcile_users: ['user_id', 'allocation_id', 'session_id', 'usage_record_id', 'kind', 'expected', 'actual'],
  acct_budget_reconcile_for: ['budget_id', 'session_id', 'kind', 'expected', 'actual'],
  acct_reconcile_changed: ['user_id', 'budget_id', 'dirty_id'],
  acct_record_charged_usage: ['usage_record_id', 'created_at', 'charged_credits', 'unpaid_credits', 'available_credits'],
  acct_adjust: ['outcome', 'allocation_id', 'available_before', 'settled'],
  acct_revoke: ['outcome', 'user_id', 'revoked', 'held'],
  acct_refund_usage: ['outcome', 'refundable', 'forgiven', 'returned'],
  acct_lock_user: [],
  acct_schedule_grant_one: ['credits'],
  acct_rerate_user: ['records', 'charged', 'refunded'],
  acct_budget_status: [
    'budget_id', 'user_id', 'org_id', 'period', 'model_id', 'timezone', 'limit_credits', 'spent_credits', 'held_credits', 'period_start',
    'resets_at',
  ],
  acct_budget_refusal: [],
  acct_event_emit: [],
  acct_event_expiring: [],
  acct_partitions_ensure: [],
};

function sessionColumns() {
  return [
    'outcome', 'available_credits', 'id', 'user_id', 'model_id', 'price_version', 'status', 'estimated_credits', 'allocated_credits',
    'used_credits', 'refunded_credits', 'unpaid_credits', 'expires_at', 'created_at',
  ] as const;
}

type TsOf<T extends PgType> = T extends 'text[]' | 'bigint[]'
  ? string[]
  : T extends 'text'
  ? string
  : T extends 'bigint'
    ? Micro | string
    : T extends 'integer'
      ? number
      : T extends 'boolean'
        ? boolean
        : T extends 'jsonb'
          ? object
          : Date | string;

/** The named arguments of a ledger function (every one explicit; null for SQL NULL). */
export type ArgsOf<F extends LedgerFunction> = {
  [A in (typeof LEDGER_FUNCTIONS)[F][number] as A[0]]: TsOf<A[1]> | null;
};

const castOf = (type: PgType) => (type === 'timestamp with time zone' ? 'timestamptz' : type);

/** `fn($1::type, $2::type, …)` from the declared argument list. */
export function callOf(fn: LedgerFunction): string {
  const args: readonly Arg[] = LEDGER_FUNCTIONS[fn];
  return `${fn}(${args.map(([, type], i) => `$${i + 1}::${castOf(type)}`).join(', ')})`;
}

/** The bind array of a call, in the declared order, from named values. */
export function bindOf<F extends LedgerFunction>(fn: F, values: ArgsOf<F>): unknown[] {
  const args: readonly Arg[] = LEDGER_FUNCTIONS[fn];
  const named = values as Record<string, unknown>;
  return args.map(([name, type]) => {
    const value = named[name];
    if (value === undefined) throw new Error(`${fn}: argument ${name} is missing`);
    if (typeof value === 'bigint') return value.toString();
    if (type === 'jsonb' && value !== null) return JSON.stringify(value);
    return value;
  });
}

// ---------- errors the ledger raises on purpose ----------

/** SQLSTATE raised when a budget would be exceeded; DETAIL is the refusal (JSON). */
const BUDGET_EXCEEDED_SQLSTATE = 'P0B01';
/** SQLSTATE raised when the unpaid limit refuses new usage; DETAIL is the user's unpaid micro-credits. */
const UNPAID_LIMIT_SQLSTATE = 'UL402';

/** Constraint name acct_assert_credits_cap raises (class 22) when credits would take a user above the cap. */
const USER_CREDITS_CAP = 'user_credits_cap';

const detailOf = (error: unknown) => pgErrorField(error, 'detail');

/**
 * The AppError for an error a ledger function raised on purpose (budget refusal, unpaid limit: the statement
 * refused and rolled back), or the error unchanged. Applied to every call; the error mapper applies it too,
 * for a refusal that surfaces elsewhere.
 */
export function ledgerError(error: unknown): unknown {
  const code = pgErrorCode(error);
  if (code === BUDGET_EXCEEDED_SQLSTATE) {
    try {
      const refusal = JSON.parse(detailOf(error) ?? '') as Record<string, unknown>;
      return new AppError('BUDGET_EXCEEDED', `Budget ${String(refusal.budgetId)} would be exceeded`, toBudgetExceededDetails(refusal));
    } catch {
      return error;
    }
  }
  if (code === '22003' && pgErrorField(error, 'constraint') === USER_CREDITS_CAP) {
    // Every path that checks the cap takes its amount from the request's `credits` (allocate, a positive
    // adjust, a refund; a schedule's grant catches it in SQL).
    return new AppError('VALIDATION_ERROR', 'The request is not valid', {
      problems: [{ location: 'body', path: 'credits', message: "would take the user's credits (lots plus holds) above 9000000000000" }],
    });
  }
  if (code === UNPAID_LIMIT_SQLSTATE) {
    const detail = detailOf(error);
    const unpaid = toCredits(fromDb(detail && /^\d+$/.test(detail) ? detail : '0'));
    return new AppError('UNPAID_LIMIT', 'Unpaid credits are above the limit; pay them before new usage', { unpaidCredits: unpaid });
  }
  return error;
}

// ---------- outcomes ----------

export type SessionStatus = 'active' | 'completed' | 'aborted' | 'expired';

/** A streaming session as the session functions return it. */
export interface LedgerSession {
  id: string;
  userId: string;
  modelId: string;
  priceVersion: number;
  status: SessionStatus;
  estimated: Micro;
  allocated: Micro;
  used: Micro;
  refunded: Micro;
  unpaid: Micro;
  expiresAt: Date;
  createdAt: Date;
}

interface SessionResultRow {
  outcome: string;
  available_credits: string | null;
  id: string;
  user_id: string;
  model_id: string;
  price_version: number;
  status: SessionStatus;
  estimated_credits: string;
  allocated_credits: string;
  used_credits: string | null;
  refunded_credits: string | null;
  unpaid_credits: string;
  expires_at: Date;
  created_at: Date;
}

/** The outcomes extend and settle share: the session is not the caller's (or missing), or has ended. */
function notFoundOrNotActive(row: SessionResultRow, action: string): { outcome: 'not_found' } | { outcome: 'not_active'; status: SessionStatus } {
  if (row.outcome === 'not_found') return { outcome: 'not_found' };
  if (row.outcome === 'not_active') return { outcome: 'not_active', status: row.status };
  throw new Error(`session ${action}: unexpected outcome ${row.outcome}`);
}

/** A session row's amounts (a row of acct_session_result, or the same columns of streaming_sessions). */
export function toLedgerSession(row: Omit<SessionResultRow, 'outcome' | 'available_credits'>): LedgerSession {
  return {
    id: row.id,
    userId: row.user_id,
    modelId: row.model_id,
    priceVersion: row.price_version,
    status: row.status,
    estimated: fromDb(row.estimated_credits),
    allocated: fromDb(row.allocated_credits),
    used: fromDb(row.used_credits),
    refunded: fromDb(row.refunded_credits),
    unpaid: fromDb(row.unpaid_credits),
    expiresAt: row.expires_at,
    createdAt: row.created_at,
  };
}

export type OpenSessionOutcome =
  | { outcome: 'created' | 'replayed'; session: LedgerSession }
  | { outcome: 'insufficient'; availableCredits: Micro }
  | { outcome: 'reused' };

export type ExtendSessionOutcome =
  | { outcome: 'extended'; session: LedgerSession }
  | { outcome: 'insufficient'; availableCredits: Micro }
  | { outcome: 'not_found' }
  | { outcome: 'not_active'; status: SessionStatus };

export type SettleSessionOutcome =
  | { outcome: 'settled' | 'replayed'; session: LedgerSession }
  | { outcome: 'not_found' }
  | { outcome: 'not_active'; status: SessionStatus };

/** The claims mirrored into user_accounts by the statement that opens a session. */
export interface MirrorClaims {
  email: string | null;
  username: string | null;
  role: string;
  orgId: string | null;
}

export interface OpenSessionArgs {
  sessionId: string;
  userId: string;
  modelId: string;
  priceVersion: number;
  estimatedInputTokens: number | null;
  estimatedOutputTokens: number | null;
  estimate: Micro;
  estimatedInputCredits: Micro | null;
  requestHash: string;
  ttlSeconds: number;
  unpaidLimit: Micro | null;
  /** Mirror the caller in the same statement. */
  mirror: MirrorClaims | null;
}

export interface SettleSessionArgs {
  sessionId: string;
  callerId: string;
  isAdmin: boolean;
  action: 'finalize' | 'abort';
  modelId: string | null;
  priceVersion: number | null;
  cost: Micro | null;
  tokens: TokenUsage | null;
  reason: string | null;
  ownerId: string;
}

/** A row of acct_balance: one per available lot (lot columns NULL for a user without lots). */
export type BalanceRow = { [K in keyof LotRow]: LotRow[K] | null } & {
  reserved: string;
  unpaid: string;
  soon_before: Date;
  org_id: string | null;
  budgets: BudgetStatusRow[];
};

export interface LotRow {
  id: string;
  user_id: string;
  total_credits: string;
  remaining_credits: string;
  allocated_by: string;
  expires_at: Date | null;
  created_at: Date;
  note: string | null;
}


const BUDGET_STATUS_COLUMNS = `budget_id::text, user_id, org_id, period, model_id, timezone, limit_credits::text, spent_credits::text,
                        held_credits::text, period_start, resets_at`;

/** SQL for the signed balance change of a ledger row (grant/release/adjust add, hold/charge/expire subtract). */
export const signedAmountSql = (type: string, amount: string) => `acct_signed_amount(${type}, ${amount})`;

// ---------- the gateway ----------

/** A row of a reconcile run: the counts of what it checked, and one difference (kind null when none). */
export interface ReconcileRow {
  users: string;
  allocations: string;
  user_id: string | null;
  allocation_id: string | null;
  session_id: string | null;
  usage_record_id: string | null;
  kind: string | null;
  expected: string;
  actual: string;
}

/** A budget counter or charge that disagrees (acct_budget_reconcile, acct_budget_reconcile_for). */
export interface BudgetReconcileRow {
  budget_id: string;
  session_id: string | null;
  kind: string;
  expected: string;
  actual: string;
}

/**
 * The transaction ids (32-bit, as bigint `xid`) running in other databases of the server, as far as this role
 * may see them (pg_stat_activity, pg_prepared_xacts): they cannot write rows in this one (reconcile's horizon).
 */
const OTHER_DATABASES_XIDS = `SELECT a.backend_xid::text::bigint AS xid FROM pg_stat_activity a
   WHERE a.backend_xid IS NOT NULL AND a.datname IS DISTINCT FROM current_database()
  UNION
  SELECT p.transaction::text::bigint FROM pg_prepared_xacts p WHERE p.database <> current_database()`;

export class Ledger {
  constructor(private readonly db: Database) {}

  // ----- streaming sessions (hot path) -----

  /** Opens a session and holds its estimate (mirroring the caller first when `mirror` is given): one statement. */
  async openSession(args: OpenSessionArgs, tx?: Transaction): Promise<OpenSessionOutcome> {
    const common = {
      p_session: args.sessionId,
      p_user: args.userId,
      p_model: args.modelId,
      p_price_version: args.priceVersion,
      p_est_input: args.estimatedInputTokens === null ? null : String(args.estimatedInputTokens),
      p_est_output: args.estimatedOutputTokens === null ? null : String(args.estimatedOutputTokens),
      p_estimate: args.estimate,
      p_est_input_credits: args.estimatedInputCredits,
      p_request_hash: args.requestHash,
      p_ttl_seconds: args.ttlSeconds,
      p_unpaid_limit: args.unpaidLimit,
    };
    const row = args.mirror
      ? await this.session(
          'acct_session_open_as',
          bindOf('acct_session_open_as', {
            ...common,
            p_email: args.mirror.email,
            p_username: args.mirror.username,
            p_role: args.mirror.role,
            p_org: args.mirror.orgId,
          }),
          tx,
        )
      : await this.session('acct_session_open', bindOf('acct_session_open', common), tx);
    switch (row.outcome) {
      case 'created':
      case 'replayed':
        return { outcome: row.outcome, session: toLedgerSession(row) };
      case 'insufficient':
        return { outcome: 'insufficient', availableCredits: fromDb(row.available_credits) };
      case 'reused':
        return { outcome: 'reused' };
      default:
        throw new Error(`session open: unexpected outcome ${row.outcome}`);
    }
  }

  /** A new TTL and/or a larger hold for an active session, atomically. */
  async extendSession(
    args: { sessionId: string; callerId: string; isAdmin: boolean; ttlSeconds: number | null; additional: Micro | null; ownerId: string },
    tx?: Transaction,
  ): Promise<ExtendSessionOutcome> {
    const row = await this.session(
      'acct_session_extend',
      bindOf('acct_session_extend', {
        p_session: args.sessionId,
        p_caller: args.callerId,
        p_is_admin: args.isAdmin,
        p_ttl_seconds: args.ttlSeconds,
        p_additional: args.additional,
        p_owner: args.ownerId,
      }),
      tx,
    );
    switch (row.outcome) {
      case 'extended':
        return { outcome: 'extended', session: toLedgerSession(row) };
      case 'insufficient':
        return { outcome: 'insufficient', availableCredits: fromDb(row.available_credits) };
      default:
        return notFoundOrNotActive(row, 'extend');
    }
  }

  /** Finalize or abort: captures `cost` (or what the session's counts say) and releases the rest of the hold. */
  async settleSession(args: SettleSessionArgs, tx?: Transaction): Promise<SettleSessionOutcome> {
    const t = args.tokens;
    const count = (n: number | undefined) => (n === undefined ? null : String(n));
    const row = await this.session(
      'acct_session_settle',
      bindOf('acct_session_settle', {
        p_session: args.sessionId,
        p_caller: args.callerId,
        p_is_admin: args.isAdmin,
        p_action: args.action,
        p_model: args.modelId,
        p_price_version: args.priceVersion,
        p_cost: args.cost,
        p_input: count(t?.inputTokens),
        p_output: count(t?.outputTokens),
        p_cached: count(t?.cachedInputTokens),
        p_reason: args.reason,
        p_cache_write: count(t?.cacheWriteTokens),
        p_cache_write_1h: count(t?.cacheWrite1hTokens),
        p_reasoning: count(t?.reasoningTokens),
        p_owner: args.ownerId,
      }),
      tx,
    );
    switch (row.outcome) {
      case 'settled':
      case 'replayed':
        return { outcome: row.outcome, session: toLedgerSession(row) };
      default:
        return notFoundOrNotActive(row, 'settle');
    }
  }

  /** Expires one overdue session under `policy` (its own statement); null when another sweeper has it or it ended. */
  async expireSession(args: { policy: string; actor: string; userId: string; sessionId: string }): Promise<{ userId: string; sessionId: string } | null> {
    const [row] = await this.call<{ expired_user_id: string; expired_session_id: string }>(
      `SELECT * FROM ${callOf('acct_session_expire_one')}`,
      bindOf('acct_session_expire_one', { p_policy: args.policy, p_actor: args.actor, p_user: args.userId, p_session: args.sessionId }),
    );
    return row ? { userId: row.expired_user_id, sessionId: row.expired_session_id } : null;
  }

  // ----- credits -----

  /** Available micro-credits (unexpired lots only). */
  async available(userId: string, tx?: Transaction): Promise<Micro> {
    const [row] = await this.call<{ available: string }>(`SELECT ${callOf('acct_available')} AS available`, bindOf('acct_available', { p_user: userId }), tx);
    return fromDb(row.available);
  }

  /**
   * A user's balance rows (acct_balance), one statement and one snapshot. With `mirror` the caller's claims are
   * mirrored into user_accounts by the same statement (a data-modifying CTE, invisible to the read: the token's
   * org is passed as p_org instead). Without `tx` it is a named prepared statement in autocommit, rerunnable (a
   * read plus an idempotent mirror); the function keeps its own plan even when statements are sent unnamed.
   */
  async balance(args: { userId: string; soonDays: number; mirror: MirroredUser | null }, tx?: Transaction): Promise<BalanceRow[]> {
    const bind = bindOf('acct_balance', { p_user: args.userId, p_soon_days: args.soonDays, p_org: args.mirror?.orgId ?? null });
    const first = bind.length + 1;
    const sql = `${args.mirror ? mirrorCte(first) : ''}SELECT * FROM ${callOf('acct_balance')}`;
    const binds = args.mirror ? [...bind, ...mirrorBind(args.mirror)] : bind;
    try {
      return tx
        ? await this.db.query<BalanceRow>(sql, binds, tx)
        : await this.db.prepared<BalanceRow>(args.mirror ? 'acct_balance_mirror' : 'acct_balance', sql, binds, { rerunnable: true });
    } catch (error) {
      throw ledgerError(error);
    }
  }

  /** Grants a new lot (the user is created if unknown). */
  async allocate(
    args: { userId: string; amount: Micro; expiresAt: Date | string | null; expiresInDays: number | null; actorId: string; note: string | null },
    tx: Transaction,
  ): Promise<LotRow> {
    const [row] = await this.call<LotRow>(
      `SELECT * FROM ${callOf('acct_allocate')}`,
      bindOf('acct_allocate', {
        p_user: args.userId,
        p_amount: args.amount,
        p_expires_at: args.expiresAt,
        p_expires_in_days: args.expiresInDays,
        p_actor: args.actorId,
        p_note: args.note,
      }),
      tx,
    );
    return row;
  }

  /** New credits pay the user's oldest unpaid usage first, up to `max`; returns what was settled. */
  async settleUnpaid(args: { userId: string; max: Micro; actorId: string }, tx: Transaction): Promise<Micro> {
    const [row] = await this.call<{ settled: string }>(
      `SELECT ${callOf('acct_settle_unpaid')} AS settled`,
      bindOf('acct_settle_unpaid', { p_user: args.userId, p_max: args.max, p_actor: args.actorId }),
      tx,
    );
    return fromDb(row.settled);
  }

  /** Writes the expiry of one lot past its expiry (SKIP LOCKED on its user); null when the user is busy. */
  async expireLot(args: { notBefore: Date | null; allocationId: string }): Promise<Micro | null> {
    const rows = await this.call<{ expired_credits: string }>(
      `SELECT * FROM ${callOf('acct_expire_one_lot')}`,
      bindOf('acct_expire_one_lot', { p_not_before: args.notBefore, p_allocation: args.allocationId }),
    );
    return rows.length === 0 ? null : fromDb(rows[0].expired_credits);
  }

  /**
   * Transaction ids running now in other databases of the server (pg_stat_activity, pg_prepared_xacts, as
   * far as this role may see them), read before a reconcile run's own transaction: see reconcileSnapshot.
   */
  async otherDatabasesTransactions(): Promise<string[]> {
    const rows = await this.call<{ xid: string }>(`SELECT xid::text AS xid FROM (${OTHER_DATABASES_XIDS}) o`, []);
    return rows.map((r) => r.xid);
  }

  /**
   * Starts a reconcile run in `tx`: makes it one REPEATABLE READ, READ ONLY snapshot (every check of the run
   * reads the same state), each statement limited to `timeoutMs`, and returns that snapshot's horizon (a 64-bit
   * xid: every transaction of this database before it had ended, so each row the run cannot see has an xmin at
   * or after it) with the last clean run's checkpoint.
   */
  async reconcileSnapshot(
    timeoutMs: number,
    tx: Transaction,
    elsewhereBefore: string[] = [],
  ): Promise<{ snapshotXmin: bigint; snapshotXmax: bigint; takenAt: Date; checkpoint: { snapshotXmin: bigint; takenAt: Date } | null }> {
    await this.db.query(`SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY`, [], tx);
    // REPEATABLE READ: this statement takes the transaction's snapshot, and every later one (the xmin read
    // below included) sees that same snapshot.
    await this.db.query(`SELECT set_config('statement_timeout', $1::text, true)`, [String(timeoutMs)], tx);
    // The horizon: the oldest transaction still running at the snapshot (or the snapshot's xmax when none is),
    // leaving out those positively known to belong to another database of the server (pg_stat_activity,
    // pg_prepared_xacts: a transaction id belongs to one database for good), which cannot write rows here.
    // A transaction that is not listed there (ended meanwhile, or hidden from this role) counts.
    // `elsewhereBefore`: the same list read just before the transaction (otherDatabasesTransactions), so a
    // long transaction of another database that ends between this snapshot and the read below still
    // counts as elsewhere.
    const [row] = await this.call<{ snapshot_xmin: string; snapshot_xmax: string; taken_at: Date; since_xmin: string | null; since: Date | null }>(
      `WITH s AS MATERIALIZED (SELECT pg_current_snapshot() AS snap),
            elsewhere AS MATERIALIZED (${OTHER_DATABASES_XIDS} UNION SELECT unnest($1::bigint[]))
       SELECT least(pg_snapshot_xmax(s.snap)::text::bigint,
                    (SELECT min(x::text::bigint) FROM pg_snapshot_xip(s.snap) x
                      WHERE x::text::bigint % 4294967296 NOT IN (SELECT xid FROM elsewhere)))::text AS snapshot_xmin,
              pg_snapshot_xmax(s.snap)::text AS snapshot_xmax,
              statement_timestamp() AS taken_at, c.snapshot_xmin::text AS since_xmin, c.taken_at AS since
         FROM s LEFT JOIN reconcile_checkpoints c ON c.id = 1`,
      [elsewhereBefore],
      tx,
    );
    return {
      snapshotXmin: BigInt(row.snapshot_xmin),
      snapshotXmax: BigInt(row.snapshot_xmax),
      takenAt: row.taken_at,
      checkpoint: row.since_xmin === null ? null : { snapshotXmin: BigInt(row.since_xmin), takenAt: row.since! },
    };
  }

  /**
   * Users and budgets written since `since` (acct_reconcile_changed), plus every reconcile_dirty row (its id,
   * to clear after a clean run). `truncated`: a table was truncated since, so only a full run will do.
   */
  async reconcileChanged(since: bigint, tx: Transaction): Promise<{ users: string[]; budgets: string[]; dirtyIds: string[]; truncated: boolean }> {
    const rows = await this.call<{ user_id: string | null; budget_id: string | null; dirty_id: string | null }>(
      `SELECT user_id, budget_id::text AS budget_id, dirty_id::text AS dirty_id FROM ${callOf('acct_reconcile_changed')}`,
      bindOf('acct_reconcile_changed', { p_since: since.toString() }),
      tx,
    );
    const users = new Set<string>();
    const budgets = new Set<string>();
    const dirtyIds: string[] = [];
    let truncated = false;
    for (const row of rows) {
      if (row.user_id !== null) users.add(row.user_id);
      if (row.budget_id !== null) budgets.add(row.budget_id);
      if (row.dirty_id !== null) dirtyIds.push(row.dirty_id);
      if (row.dirty_id !== null && row.user_id === null && row.budget_id === null) truncated = true;
    }
    return { users: [...users].sort(), budgets: [...budgets].sort(), dirtyIds, truncated };
  }

  /** Every reconcile_dirty row's id (a clean full run clears them). */
  async reconcileDirtyIds(tx: Transaction): Promise<string[]> {
    const rows = await this.call<{ id: string }>(`SELECT id::text AS id FROM reconcile_dirty`, [], tx);
    return rows.map((r) => r.id);
  }

  /** Recomputes every lot and hold leg from the ledger (acct_reconcile); the counts ride along (one snapshot). */
  async reconcile(tx?: Transaction) {
    return this.call<ReconcileRow>(
      `SELECT c.users, c.allocations, d.*
         FROM (SELECT (SELECT count(*) FROM user_accounts) AS users,
                      (SELECT count(*) FROM credit_allocations) AS allocations) c
         LEFT JOIN acct_reconcile() d ON true
        ORDER BY d.user_id, d.allocation_id, d.session_id, d.usage_record_id, d.kind`,
      [],
      tx,
    );
  }

  /** The same checks for these users only (acct_reconcile_users); `users` counts those that exist. */
  async reconcileUsers(users: string[], tx?: Transaction) {
    return this.call<ReconcileRow>(
      `SELECT c.users, c.allocations, d.*
         FROM (SELECT (SELECT count(*) FROM user_accounts WHERE id = ANY($1::text[])) AS users,
                      (SELECT count(*) FROM credit_allocations WHERE user_id = ANY($1::text[])) AS allocations) c
         LEFT JOIN ${callOf('acct_reconcile_users')} d ON true
        ORDER BY d.user_id, d.allocation_id, d.session_id, d.usage_record_id, d.kind`,
      bindOf('acct_reconcile_users', { p_users: users }),
      tx,
    );
  }

  /** Budget counters against the charges that built them. */
  async reconcileBudgets(tx?: Transaction) {
    return this.call<BudgetReconcileRow>(
      `SELECT budget_id::text, session_id, kind, expected::text, actual::text FROM acct_budget_reconcile() ORDER BY budget_id, kind`,
      [],
      tx,
    );
  }

  /** The same for the budgets these users own or are charged in, and these budgets (acct_budget_reconcile_for). */
  async reconcileBudgetsFor(users: string[], budgets: string[], tx?: Transaction) {
    return this.call<BudgetReconcileRow>(
      `SELECT budget_id::text, session_id, kind, expected::text, actual::text FROM ${callOf('acct_budget_reconcile_for')} ORDER BY budget_id, kind`,
      bindOf('acct_budget_reconcile_for', { p_users: users, p_budgets: budgets }),
      tx,
    );
  }

  /**
   * After a clean run: moves the checkpoint to its snapshot, never backwards (two runs at once: the later
   * snapshot wins; the single row's lock orders them), and clears the reconcile_dirty rows it checked.
   * Returns whether the checkpoint moved.
   */
  async advanceReconcileCheckpoint(args: { snapshotXmin: bigint; takenAt: Date; mode: 'full' | 'incremental'; checkedUsers: number; dirtyIds: string[] }) {
    const [row] = await this.call<{ advanced: string }>(
      `WITH advanced AS (
         INSERT INTO reconcile_checkpoints AS c (id, snapshot_xmin, taken_at, mode, checked_users, updated_at)
         VALUES (1, $1::bigint, $2::timestamptz, $3::text, $4::bigint, now())
         ON CONFLICT (id) DO UPDATE
           SET snapshot_xmin = EXCLUDED.snapshot_xmin, taken_at = EXCLUDED.taken_at, mode = EXCLUDED.mode,
               checked_users = EXCLUDED.checked_users, updated_at = now()
           WHERE c.snapshot_xmin < EXCLUDED.snapshot_xmin
         RETURNING 1
       ),
       cleared AS (DELETE FROM reconcile_dirty WHERE id = ANY($5::bigint[]) RETURNING 1)
       SELECT (SELECT count(*) FROM advanced)::text AS advanced, (SELECT count(*) FROM cleared) AS cleared`,
      [args.snapshotXmin.toString(), args.takenAt, args.mode, args.checkedUsers, args.dirtyIds],
    );
    return row.advanced !== '0';
  }

  /** After a run that found differences: its users and budgets stay in every incremental run until a clean one. */
  async noteReconcileDiscrepancies(users: string[], budgets: string[]) {
    await this.call(
      `INSERT INTO reconcile_dirty (user_id, budget_id, reason)
       SELECT n.user_id, n.budget_id, 'discrepancy'
         FROM (SELECT u AS user_id, NULL::bigint AS budget_id FROM unnest($1::text[]) u
               UNION SELECT NULL, b FROM unnest($2::bigint[]) b) n
        WHERE NOT EXISTS (SELECT 1 FROM reconcile_dirty d
                           WHERE d.reason = 'discrepancy' AND d.user_id IS NOT DISTINCT FROM n.user_id
                             AND d.budget_id IS NOT DISTINCT FROM n.budget_id)
       RETURNING 1`,
      [users, budgets],
    );
  }

  // ----- usage -----

  /** Records usage and charges it (what is not covered is unpaid), in one statement. */
  async recordChargedUsage(
    args: {
      userId: string;
      service: string;
      operation: string;
      modelId: string | null;
      priceVersion: number | null;
      tokens: TokenUsage;
      credits: Micro;
      metadata: object | null;
      actorId: string;
      occurredAt: string | null;
      unpaidLimit: Micro | null;
    },
    tx: Transaction,
  ): Promise<{ usageRecordId: string; createdAt: Date; recordedAt: Date; charged: Micro; unpaid: Micro; available: Micro }> {
    const t = args.tokens;
    const [row] = await this.call<{
      usage_record_id: string;
      created_at: Date;
      recorded_at: Date;
      charged_credits: string;
      unpaid_credits: string;
      available_credits: string;
    }>(
      `SELECT usage_record_id::text, created_at, now() AS recorded_at, charged_credits::text, unpaid_credits::text,
              available_credits::text
         FROM ${callOf('acct_record_charged_usage')}`,
      bindOf('acct_record_charged_usage', {
        p_user: args.userId,
        p_service: args.service,
        p_operation: args.operation,
        p_model: args.modelId,
        p_price_version: args.priceVersion,
        p_input: String(t.inputTokens),
        p_output: String(t.outputTokens),
        p_cached: String(t.cachedInputTokens),
        p_credits: args.credits,
        p_metadata: args.metadata,
        p_actor: args.actorId,
        p_cache_write: String(t.cacheWriteTokens),
        p_cache_write_1h: String(t.cacheWrite1hTokens),
        p_reasoning: String(t.reasoningTokens),
        p_occurred_at: args.occurredAt,
        p_unpaid_limit: args.unpaidLimit,
      }),
      tx,
    );
    return {
      usageRecordId: row.usage_record_id,
      createdAt: row.created_at,
      recordedAt: row.recorded_at,
      charged: fromDb(row.charged_credits),
      unpaid: fromDb(row.unpaid_credits),
      available: fromDb(row.available_credits),
    };
  }

  // ----- corrections -----

  /** A signed adjustment: positive grants a lot, negative takes from available lots (all or nothing). */
  async adjust(
    args: { userId: string; amount: Micro; expiresAt: Date | string | null; actorId: string; reason: string; settleUnpaid: boolean },
    tx: Transaction,
  ): Promise<
    | { outcome: 'adjusted'; allocationId: string | null; settled: Micro }
    | { outcome: 'not_found' }
    | { outcome: 'insufficient'; availableBefore: Micro }
  > {
    const [row] = await this.call<{ outcome: string; allocation_id: string | null; available_before: string; settled: string }>(
      `SELECT outcome, allocation_id::text, available_before::text, settled::text FROM ${callOf('acct_adjust')}`,
      bindOf('acct_adjust', {
        p_user: args.userId,
        p_amount: args.amount,
        p_expires_at: args.expiresAt,
        p_actor: args.actorId,
        p_reason: args.reason,
        p_settle: args.settleUnpaid,
      }),
      tx,
    );
    if (row.outcome === 'not_found') return { outcome: 'not_found' };
    if (row.outcome === 'insufficient') return { outcome: 'insufficient', availableBefore: fromDb(row.available_before) };
    return { outcome: 'adjusted', allocationId: row.allocation_id, settled: fromDb(row.settled) };
  }

  /** Voids what is left of a lot (or part of it). */
  async revoke(
    args: { allocationId: string; amount: Micro | null; actorId: string; reason: string },
    tx: Transaction,
  ): Promise<{ outcome: 'revoked'; userId: string; revoked: Micro; held: Micro } | { outcome: 'not_found' }> {
    const [row] = await this.call<{ outcome: string; user_id: string | null; revoked: string | null; held: string | null }>(
      `SELECT outcome, user_id, revoked::text, held::text FROM ${callOf('acct_revoke')}`,
      bindOf('acct_revoke', { p_allocation: args.allocationId, p_amount: args.amount, p_actor: args.actorId, p_reason: args.reason }),
      tx,
    );
    if (row.outcome === 'not_found') return { outcome: 'not_found' };
    return { outcome: 'revoked', userId: row.user_id!, revoked: fromDb(row.revoked), held: fromDb(row.held) };
  }

  /** Forgives unpaid credits of a usage record first, then returns charged credits to their lots. */
  async refundUsage(
    args: { recordId: string; amount: Micro | null; actorId: string; reason: string },
    tx: Transaction,
  ): Promise<
    | { outcome: 'refunded'; forgiven: Micro; returned: Micro }
    | { outcome: 'not_found' }
    | { outcome: 'session_expired' }
    | { outcome: 'too_much'; refundable: Micro }
  > {
    const [row] = await this.call<{ outcome: string; refundable: string | null; forgiven: string | null; returned: string | null }>(
      `SELECT outcome, refundable::text, forgiven::text, returned::text FROM ${callOf('acct_refund_usage')}`,
      bindOf('acct_refund_usage', { p_record: args.recordId, p_amount: args.amount, p_actor: args.actorId, p_reason: args.reason }),
      tx,
    );
    switch (row.outcome) {
      case 'not_found':
      case 'session_expired':
        return { outcome: row.outcome };
      case 'too_much':
        return { outcome: 'too_much', refundable: fromDb(row.refundable) };
      default:
        return { outcome: 'refunded', forgiven: fromDb(row.forgiven), returned: fromDb(row.returned) };
    }
  }

  /** Locks the user's row (created if unknown) for the rest of `tx`. */
  async lockUser(userId: string, tx: Transaction): Promise<void> {
    await this.call(`SELECT ${callOf('acct_lock_user')}`, bindOf('acct_lock_user', { p_user: userId }), tx);
  }

  /** Grants one due (schedule, period) as of `now`; null when nothing is due. */
  async grantOneScheduled(args: { now: Date; settleUnpaid: boolean }): Promise<Micro | null> {
    const rows = await this.call<{ credits: string }>(
      `SELECT credits::text FROM ${callOf('acct_schedule_grant_one')}`,
      bindOf('acct_schedule_grant_one', { p_now: args.now, p_settle: args.settleUnpaid }),
    );
    return rows.length === 0 ? null : fromDb(rows[0].credits);
  }

  /** Re-prices up to `limit` of one user's records at another price version, charging or refunding the difference. */
  async rerateUser(
    args: { userId: string; modelId: string; fromVersion: number; toVersion: number; from: Date | string; to: Date | string; limit: number; actorId: string },
    tx: Transaction,
  ): Promise<{ records: number; charged: Micro; refunded: Micro }> {
    const [row] = await this.call<{ records: number; charged: string; refunded: string }>(
      `SELECT records, charged::text, refunded::text FROM ${callOf('acct_rerate_user')}`,
      bindOf('acct_rerate_user', {
        p_user: args.userId,
        p_model: args.modelId,
        p_from_version: args.fromVersion,
        p_to_version: args.toVersion,
        p_from: args.from,
        p_to: args.to,
        p_limit: args.limit,
        p_actor: args.actorId,
      }),
      tx,
    );
    return { records: row.records, charged: fromDb(row.charged), refunded: fromDb(row.refunded) };
  }

  /**
   * What a re-rate would change, in one read: records of modelId@fromVersion created in [from, to] (expired
   * sessions' records skipped, as rerateUser does), priced at toVersion by acct_usage_cost (the SQL twin of costAt).
   */
  async rerateDryRun(args: { modelId: string; fromVersion: number; toVersion: number; from: Date | string; to: Date | string }) {
    const [row] = await this.call<{ records: string; charged: string; refunded: string }>(
      `WITH diffs AS (
         SELECT acct_usage_cost(u, p) - u.credits AS diff,
                u.credits - u.refunded_credits AS reducible
           FROM usage_records u JOIN model_prices p ON p.model_id = u.model_id AND p.price_version = $3
          WHERE u.model_id = $1 AND u.price_version = $2 AND u.created_at BETWEEN $4 AND $5
            AND NOT EXISTS (SELECT 1 FROM streaming_sessions s WHERE s.user_id = u.user_id AND s.id = u.session_id AND s.status = 'expired')
       )
       SELECT count(*)::text AS records, coalesce(sum(diff) FILTER (WHERE diff > 0), 0)::text AS charged,
              coalesce(sum(least(-diff, reducible)) FILTER (WHERE diff < 0), 0)::text AS refunded
         FROM diffs`,
      [args.modelId, args.fromVersion, args.toVersion, args.from, args.to],
    );
    return { records: Number(row.records), charged: fromDb(row.charged), refunded: fromDb(row.refunded) };
  }

  // ----- budgets -----

  /** Status rows of a user's own budgets and their org's (either may be null), as of now. */
  async budgetStatus(args: { userId: string | null; orgId: string | null }): Promise<BudgetStatusRow[]> {
    return this.call<BudgetStatusRow>(`SELECT ${BUDGET_STATUS_COLUMNS} FROM acct_budget_status($1::text, $2::text, now())`, [args.userId, args.orgId]);
  }

  /** The refusal (micro-credits as text) of the first budget `amount` more would exceed right now, or null. A read. */
  async budgetRefusal(args: { userId: string; modelId: string | null; amount: Micro }): Promise<Record<string, unknown> | null> {
    const [row] = await this.call<{ refusal: Record<string, unknown> | null }>(
      `SELECT acct_budget_refusal($1::text, (SELECT org_id FROM user_accounts WHERE id = $1), $2::text, $3::bigint, now(), false) AS refusal`,
      [args.userId, args.modelId, args.amount.toString()],
    );
    return row?.refusal ?? null;
  }

  // ----- events -----

  /** Writes one event in `tx` (for changes made outside the ledger functions); returns its number. */
  async emitEvent(args: { type: string; userId: string | null; data: object; orgId?: string | null }, tx?: Transaction): Promise<string> {
    const [row] = await this.call<{ id: string }>(
      `SELECT ${callOf('acct_event_emit')} AS id`,
      bindOf('acct_event_emit', { p_type: args.type, p_user: args.userId, p_data: args.data, p_org: args.orgId ?? null }),
      tx,
    );
    return String(row.id);
  }

  /** credits.expiring for lots within `noticeDays` of expiry, once per lot; returns how many. */
  async announceExpiring(args: { noticeDays: number; limit: number }): Promise<number> {
    const [row] = await this.call<{ n: number }>(
      `SELECT ${callOf('acct_event_expiring')} AS n`,
      bindOf('acct_event_expiring', { p_notice_days: args.noticeDays, p_limit: args.limit }),
    );
    return Number(row.n);
  }

  /**
   * Makes the monthly partitions of usage_records, credit_transactions and events from `from`'s month (null:
   * last month) through `monthsAhead` months after this one, where missing; returns how many it created.
   */
  async ensurePartitions(args: { monthsAhead: number; from?: Date | null }): Promise<number> {
    const [row] = await this.call<{ n: number }>(
      `SELECT ${callOf('acct_partitions_ensure')} AS n`,
      bindOf('acct_partitions_ensure', { p_months_ahead: args.monthsAhead, p_from: args.from ?? null }),
    );
    return Number(row.n);
  }

  // ----- internals -----

  /** One session statement: inside `tx` it joins it; otherwise a named prepared statement (rerunnable: every session function is idempotent by session id). */
  private async session(fn: 'acct_session_open' | 'acct_session_open_as' | 'acct_session_extend' | 'acct_session_settle', bind: unknown[], tx?: Transaction) {
    const sql = `SELECT * FROM ${callOf(fn)}`;
    try {
      const [row] = tx
        ? await this.db.query<SessionResultRow>(sql, bind, tx)
        : await this.db.prepared<SessionResultRow>(fn, sql, bind, { rerunnable: true });
      return row;
    } catch (error) {
      throw ledgerError(error);
    }
  }

  private async call<T extends object>(sql: string, bind: unknown[], tx?: Transaction): Promise<T[]> {
    try {
      return await this.db.query<T>(sql, bind, tx);
    } catch (error) {
      throw ledgerError(error);
    }
  }
}

const gateways = new WeakMap<Database, Ledger>();

/** The ledger gateway of a database (one per Database object). */
export function ledgerOf(db: Database): Ledger {
  let ledger = gateways.get(db);
  if (!ledger) {
    ledger = new Ledger(db);
    gateways.set(db, ledger);
  }
  return ledger;
}
