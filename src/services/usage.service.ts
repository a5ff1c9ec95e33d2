import type { Database } from '../db/database';
import { AppError, forbidden, notFound } from '../lib/errors';
import { Metrics } from '../lib/metrics';
import { countFromDb, formatCredits, fromDb, toCredits, tokenSumFromDb, type Micro } from '../lib/money';
import { cursorBigint, cursorEpochMicros, decodeCursor, encodeCursor, invalidCursor } from '../schemas/common';
import { recordTokensOf, resolveDayRange, TOP_USERS, type DayRange, type RecordUsageBody, type RecordsQuery, type StatsQuery } from '../schemas/usage.schemas';
import { ledgerOf } from '../ledger/ledger';
import type { CreditService } from './credit.service';
import type { IdempotencyContext, IdempotencyService, Outcome } from './idempotency.service';
import type { PriceService } from './price.service';

import type { Caller, UserAccountService } from './user-account.service';
import type { TokenUsage } from '../metering/tokens';

export interface UsageRecordView extends TokenUsage {
  id: string;
  userId: string;
  sessionId: string | null;
  service: string;
  operation: string;
  modelId: string | null;
  priceVersion: number | null;
  credits: number;
  chargedCredits: number;
  unpaidCredits: number;
  refundedCredits: number;
  metadata: Record<string, unknown> | null;
  recordedBy: string | null;
  /** When the usage happened (occurredAt): the day it is counted on. */
  createdAt: string;
  occurredAt: string;
  /** When the service wrote the record. */
  recordedAt: string;
}

export interface RecordUsageResult {
  usageRecord: UsageRecordView;
  chargedCredits: number;
  unpaidCredits: number;
  availableCredits: number;
}

export interface RecordRow {
  id: string;
  user_id: string;
  session_id: string | null;
  service: string;
  operation: string;
  model_id: string | null;
  price_version: number | null;
  input_tokens: string;
  output_tokens: string;
  cached_input_tokens: string;
  cache_write_tokens: string;
  cache_write_1h_tokens: string;
  reasoning_tokens: string;
  credits: string;
  charged_credits: string;
  unpaid_credits: string;
  refunded_credits: string;
  metadata: Record<string, unknown> | null;
  recorded_by: string | null;
  created_at: Date;
  recorded_at: Date | null;
  /** created_at in microseconds since the epoch: the exact cursor key (a JS Date keeps only ms). */
  created_us: string;
}

/** Sums as pg returns them (numeric as text); null when the group is empty. */
interface SumColumns {
  requests: string | null;
  credits: string | null;
  unpaid: string | null;
  refunded: string | null;
  input_tokens: string | null;
  output_tokens: string | null;
  cached_input_tokens: string | null;
  cache_write_tokens: string | null;
  cache_write_1h_tokens: string | null;
  reasoning_tokens: string | null;
}

const sums = (row: SumColumns) => ({
  requests: countFromDb(row.requests),
  credits: toCredits(fromDb(row.credits)),
  unpaidCredits: toCredits(fromDb(row.unpaid)),
  refundedCredits: toCredits(fromDb(row.refunded)),
  inputTokens: tokenSumFromDb(row.input_tokens),
  outputTokens: tokenSumFromDb(row.output_tokens),
  cachedInputTokens: tokenSumFromDb(row.cached_input_tokens),
  cacheWriteTokens: tokenSumFromDb(row.cache_write_tokens),
  cacheWrite1hTokens: tokenSumFromDb(row.cache_write_1h_tokens),
  reasoningTokens: tokenSumFromDb(row.reasoning_tokens),
});

const SUM_SQL = `sum(requests)::text AS requests, sum(credits)::text AS credits, sum(unpaid_credits)::text AS unpaid,
       sum(refunded_credits)::text AS refunded,
       sum(input_tokens)::text AS input_tokens, sum(output_tokens)::text AS output_tokens,
       sum(cached_input_tokens)::text AS cached_input_tokens, sum(cache_write_tokens)::text AS cache_write_tokens,
       sum(cache_write_1h_tokens)::text AS cache_write_1h_tokens, sum(reasoning_tokens)::text AS reasoning_tokens`;

export const RECORD_COLUMNS = `id::text, user_id, session_id, service, operation, model_id, price_version, input_tokens::text,
       output_tokens::text, cached_input_tokens::text, cache_write_tokens::text, cache_write_1h_tokens::text,
       reasoning_tokens::text, credits::text, charged_credits::text, unpaid_credits::text, refunded_credits::text,
       metadata, recorded_by, created_at, recorded_at, (extract(epoch FROM created_at) * 1000000)::bigint::text AS created_us`;

/** Rows fetched per page while streaming a CSV export. */
const CSV_PAGE_SIZE = 1000;

export const CSV_COLUMNS = [
  'id', 'created_at', 'user_id', 'service', 'operation', 'model_id', 'price_version', 'input_tokens', 'output_tokens',
  'cached_input_tokens', 'cache_write_tokens', 'cache_write_1h_tokens', 'reasoning_tokens', 'credits', 'charged_credits',
  'unpaid_credits', 'refunded_credits', 'session_id', 'recorded_by', 'metadata', 'recorded_at',
] as const;

/**
 * One CSV field (RFC 4180): quoted when it holds a comma, quote or line break, quotes doubled. Text a
 * spreadsheet would run as a formula (=, +, -, @, tab, CR first) is prefixed with ' (OWASP CSV injection).
 */
export function csvField(value: string | number | null): string {
  if (value === null) return '';
  let text = String(value);
  if (typeof value === 'string' && /^[=+\-@\t\r]/.test(text)) text = `'${text}`;
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

const DAY_MS = 86_400_000;
const dayString = (ms: number) => new Date(ms).toISOString().slice(0, 10);

/**
 * Splits a range of UTC days into the whole ISO weeks (Monday..Sunday) inside it, as [first Monday,
 * last Monday], and the one or two runs of days outside those weeks.
 */
export function splitWeeks(range: DayRange): { weeks: [string, string] | null; days: [string, string][] } {
  const from = Date.parse(range.fromDay);
  const to = Date.parse(range.toDay);
  const isoDow = (ms: number) => (new Date(ms).getUTCDay() + 6) % 7; // Monday 0 .. Sunday 6
  const firstMonday = from + ((7 - isoDow(from)) % 7) * DAY_MS;
  const lastSunday = to - ((isoDow(to) + 1) % 7) * DAY_MS;
  const lastMonday = lastSunday - 6 * DAY_MS;
  if (firstMonday > lastMonday) return { weeks: null, days: [[range.fromDay, range.toDay]] };
  const days: [string, string][] = [];
  if (firstMonday > from) days.push([range.fromDay, dayString(firstMonday - DAY_MS)]);
  if (lastSunday < to) days.push([dayString(lastSunday + DAY_MS), range.toDay]);
  return { weeks: [dayString(firstMonday), dayString(lastMonday)], days };
}
const rangeView = (range: DayRange) => ({ from: `${range.fromDay}T00:00:00.000Z`, to: `${range.toDay}T23:59:59.999Z` });

/** Usage records and statistics (issue #5). Statistics read only rollups, never usage_records. */
export class UsageService {
  constructor(
    private readonly db: Database,
    private readonly credits: CreditService,
    private readonly prices: PriceService,
    private readonly idempotency: IdempotencyService,
    private readonly metrics: Metrics = new Metrics(),
    private readonly users: UserAccountService,
    private readonly unpaidLimit?: Micro,
  ) {}

  private get ledger() {
    return ledgerOf(this.db);
  }

  /**
   * Records usage and charges it from the user's available credits; whatever they do not cover is
   * stored as unpaid. Usage that happened is always recorded (never INSUFFICIENT_CREDITS), and a target
   * user never seen before is created, as an allocation would. One SQL call inside the idempotency
   * transaction: lock the user, record, fold into the rollups, draw, link the ledger rows to the record.
   */
  async recordUsage(caller: Caller, body: RecordUsageBody, idem: IdempotencyContext | undefined): Promise<Outcome<RecordUsageResult>> {
    const userId = this.targetOf(caller, body.userId);
    const tokens = recordTokensOf(body);
    // A late event is priced at the version in effect when it happened.
    const occurredAt = body.occurredAt === undefined ? null : new Date(body.occurredAt);
    const cost = await this.credits.resolveCost(
      body.credits,
      () => (occurredAt ? this.prices.at(body.modelId!, occurredAt) : this.prices.current(body.modelId!)),
      () => tokens,
      ['inputTokens', 'outputTokens'],
    );
    const credits = cost.credits;
    const priceVersion = cost.price?.priceVersion ?? null;
    const modelId = body.modelId ?? null;
    const { inputTokens, outputTokens, cachedInputTokens, cacheWriteTokens, cacheWrite1hTokens, reasoningTokens } = tokens;
    const metadata = body.metadata ?? null;

    // A user's own record is refused inside the statement when a budget would be exceeded (BUDGET_EXCEEDED).
    return this.idempotency.run(idem, async (tx) => {
      const row = await this.ledger.recordChargedUsage(
        {
          userId,
          service: body.service,
          operation: body.operation,
          modelId,
          priceVersion,
          tokens,
          credits,
          metadata,
          actorId: caller.userId,
          occurredAt: body.occurredAt ?? null,
          // UNPAID_LIMIT applies to a user's own records; supervisors' and admins' records are never refused.
          unpaidLimit: caller.role === 'user' ? (this.unpaidLimit ?? null) : null,
        },
        tx,
      );
      const { charged, unpaid } = row;
      tx.afterCommit(() => {
        this.metrics.recordCredits('charged', charged);
        this.metrics.recordCredits('unpaid', unpaid);
      });
      const usageRecord: UsageRecordView = {
        id: row.usageRecordId,
        userId,
        sessionId: null,
        service: body.service,
        operation: body.operation,
        modelId,
        priceVersion,
        inputTokens,
        outputTokens,
        cachedInputTokens,
        cacheWriteTokens,
        cacheWrite1hTokens,
        reasoningTokens,
        credits: toCredits(credits),
        chargedCredits: toCredits(charged),
        unpaidCredits: toCredits(unpaid),
        refundedCredits: 0,
        metadata,
        recordedBy: caller.userId,
        createdAt: row.createdAt.toISOString(),
        occurredAt: row.createdAt.toISOString(),
        recordedAt: row.recordedAt.toISOString(),
      };
      return {
        effect: 'created',
        body: {
          usageRecord,
          chargedCredits: toCredits(charged),
          unpaidCredits: toCredits(unpaid),
          availableCredits: toCredits(row.available),
        },
      };
    });
  }

  /**
   * A user's statistics over whole UTC days, from usage_daily only: one indexed range scan of that
   * user's rollup rows (primary key prefix user_id, day), so the cost grows with days, not records.
   * `userId` (another user) is for supervisors and admins; a user never seen is NOT_FOUND.
   */
  async getUserStats(caller: Caller, query: StatsQuery, userId?: string) {
    const range = dayRangeOf(query);
    const target = this.targetOf(caller, userId);
    if (target !== caller.userId) await this.assertUserExists(target);
    const rows = await this.db.read<SumColumns & { g: number; service: string; operation: string; model_id: string; day: string }>(
      `SELECT GROUPING(service, operation, model_id, day) AS g, service, operation, model_id, day::text AS day, ${SUM_SQL}
         FROM usage_daily
        WHERE user_id = $1 AND day BETWEEN $2::date AND $3::date
        GROUP BY GROUPING SETS ((), (service, operation), (model_id), (day))`,
      [target, range.fromDay, range.toDay],
    );
    // GROUPING() bits, most significant first: service 8, operation 4, model_id 2, day 1.
    const totals = rows.find((r) => r.g === 15)!;
    const byService = rows
      .filter((r) => r.g === 3)
      .map((r) => ({ service: r.service, operation: r.operation, ...sums(r) }))
      .sort((a, b) => b.credits - a.credits || b.requests - a.requests || cmp(a.service, b.service) || cmp(a.operation, b.operation));
    return {
      userId: target,
      ...rangeView(range),
      totals: sums(totals),
      byService,
      byModel: byModelOf(rows.filter((r) => r.g === 13)),
      daily: dailySeries(range, rows.filter((r) => r.g === 14)),
    };
  }

  /**
   * System statistics. Usage figures come from the derived rollups (usage_daily_system: days x models x
   * 16 shards; usage_user_weekly/daily: about 10 rows per active user, for top users); credits and sessions are the
   * system as of now, from lots, active holds, small counter tables and a partial index. The three reads
   * run in parallel on separate connections: a dashboard may see them a few milliseconds apart.
   */
  async getSystemStats(query: StatsQuery) {
    const range = dayRangeOf(query);
    const [usageRows, userRows, [snapshot]] = await Promise.all([
      this.db.read<SumColumns & { g: number; model_id: string; day: string }>(
        `SELECT GROUPING(model_id, day) AS g, model_id, day::text AS day, ${SUM_SQL}
           FROM usage_daily_system
          WHERE day BETWEEN $1::date AND $2::date
          GROUP BY GROUPING SETS ((), (model_id), (day))`,
        [range.fromDay, range.toDay],
      ),
      this.topUsers(range),
      this.db.read<Record<'allocated' | 'available' | 'reserved' | 'consumed' | 'unpaid' | 'refunded' | 'expired' | 'active' | 'completed' | 'aborted' | 'expired_sessions', string>>(
        `WITH lots AS (
           SELECT coalesce(sum(total_credits), 0) AS allocated,
                  coalesce(sum(remaining_credits) FILTER (WHERE expires_at IS NULL OR expires_at > now()), 0) AS available
             FROM credit_allocations
         ), counts AS (
           SELECT coalesce(sum(sessions) FILTER (WHERE status = 'completed'), 0) AS completed,
                  coalesce(sum(sessions) FILTER (WHERE status = 'aborted'), 0) AS aborted,
                  coalesce(sum(sessions) FILTER (WHERE status = 'expired'), 0) AS expired
             FROM session_status_counts
         ), totals AS (
           SELECT coalesce(sum(credits - unpaid_credits), 0) AS consumed, coalesce(sum(unpaid_credits), 0) AS unpaid,
                  coalesce(sum(refunded_credits), 0) AS refunded
             FROM usage_totals
         )
         SELECT lots.allocated::text, lots.available::text,
                (SELECT coalesce(sum(h.held_credits - h.captured_credits - h.released_credits), 0)
                   FROM streaming_sessions s JOIN session_holds h ON h.user_id = s.user_id AND h.session_id = s.id
                  WHERE s.status = 'active')::text AS reserved,
                totals.consumed::text, totals.unpaid::text, totals.refunded::text,
                (SELECT coalesce(sum(amount), 0) FROM credit_transactions WHERE type = 'expire')::text AS expired,
                (SELECT count(*) FROM streaming_sessions WHERE status = 'active')::text AS active,
                counts.completed::text, counts.aborted::text, counts.expired::text AS expired_sessions
           FROM lots, counts, totals`,
      ),
    ]);
    const totals = usageRows.find((r) => r.g === 3)!;
    return {
      ...rangeView(range),
      totals: { ...sums(totals), activeUsers: userRows.length > 0 ? countFromDb(userRows[0].active_users) : 0 },
      credits: {
        allocated: toCredits(fromDb(snapshot.allocated)),
        available: toCredits(fromDb(snapshot.available)),
        reserved: toCredits(fromDb(snapshot.reserved)),
        consumed: toCredits(fromDb(snapshot.consumed)),
        expired: toCredits(fromDb(snapshot.expired)),
        unpaid: toCredits(fromDb(snapshot.unpaid)),
        refunded: toCredits(fromDb(snapshot.refunded)),
      },
      sessions: {
        active: countFromDb(snapshot.active),
        completed: countFromDb(snapshot.completed),
        aborted: countFromDb(snapshot.aborted),
        expired: countFromDb(snapshot.expired_sessions),
      },
      topUsers: userRows.map((r) => ({
        userId: r.user_id,
        requests: countFromDb(r.requests),
        credits: toCredits(fromDb(r.credits)),
        unpaidCredits: toCredits(fromDb(r.unpaid)),
      })),
      byModel: byModelOf(usageRows.filter((r) => r.g === 1)),
      daily: dailySeries(range, usageRows.filter((r) => r.g === 2)),
    };
  }

  /**
   * Users by credits over the range, and how many were active: whole weeks from usage_user_weekly,
   * the days at either end from usage_user_daily, one index-only scan per part.
   */
  private topUsers(range: DayRange) {
    const { weeks, days } = splitWeeks(range);
    const bind: unknown[] = [];
    const parts: string[] = [];
    const part = (table: string, column: string, [first, last]: [string, string]) => {
      bind.push(first, last);
      parts.push(
        `SELECT user_id, requests, credits, unpaid_credits FROM ${table}
          WHERE ${column} BETWEEN $${bind.length - 1}::date AND $${bind.length}::date`,
      );
    };
    for (const span of days) part('usage_user_daily', 'day', span);
    if (weeks) part('usage_user_weekly', 'week', weeks);
    bind.push(TOP_USERS);
    return this.db.read<{ user_id: string; requests: string; credits: string; unpaid: string; active_users: string }>(
      `SELECT user_id, sum(requests)::text AS requests, sum(credits)::text AS credits,
              sum(unpaid_credits)::text AS unpaid, (count(*) OVER ())::text AS active_users
         FROM (${parts.join(' UNION ALL ')}) AS usage
        GROUP BY user_id
        ORDER BY sum(credits) DESC, user_id
        LIMIT $${bind.length}`,
      bind,
    );
  }

  /** One page of a user's records, newest first, keyed by (created_at, id). */
  async listRecords(caller: Caller, query: RecordsQuery): Promise<{ data: UsageRecordView[]; nextCursor: string | null }> {
    const userId = await this.readableTarget(caller, query.userId);
    const after = cursorKeys(query.cursor);
    const rows = await this.fetchRecords(userId, query, query.limit + 1, after);
    const more = rows.length > query.limit;
    const pageRows = more ? rows.slice(0, query.limit) : rows;
    const last = pageRows[pageRows.length - 1];
    return {
      data: pageRows.map(recordView),
      nextCursor: more ? encodeCursor([last.created_us, last.id]) : null,
    };
  }

  /**
   * Every record of the range as CSV, produced page by page (keyset pagination), so an export of any
   * size holds one page in memory. Access is checked before the first byte is produced.
   */
  async exportRecordsCsv(caller: Caller, query: RecordsQuery): Promise<{ filename: string; chunks: AsyncIterable<string> }> {
    const userId = await this.readableTarget(caller, query.userId);
    const fetchPage = (after: [string, string] | undefined) => this.fetchRecords(userId, query, CSV_PAGE_SIZE, after);
    // A cursor is checked like the JSON list's (a forged one is a 400 before the first byte) and honoured:
    // the export starts after it.
    const start = cursorKeys(query.cursor);
    async function* chunks(): AsyncGenerator<string> {
      yield CSV_COLUMNS.join(',') + '\r\n';
      let after = start;
      for (;;) {
        const rows = await fetchPage(after);
        if (rows.length === 0) return;
        yield rows.map(csvLine).join('');
        if (rows.length < CSV_PAGE_SIZE) return;
        const last = rows[rows.length - 1];
        after = [last.created_us, last.id];
      }
    }
    const safeName = userId.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 64);
    return { filename: `usage-${safeName}.csv`, chunks: chunks() };
  }

  private fetchRecords(userId: string, query: RecordsQuery, limit: number, after: [string, string] | undefined) {
    const bind: unknown[] = [userId];
    const where = ['user_id = $1'];
    if (query.from) {
      bind.push(query.from.text);
      where.push(`created_at >= $${bind.length}::timestamptz`);
    }
    if (query.to) {
      bind.push(query.to.text);
      where.push(`created_at <= $${bind.length}::timestamptz`);
    }
    if (after) {
      bind.push(after[0], after[1]);
      where.push(
        `(created_at, id) < (timestamptz 'epoch' + $${bind.length - 1}::bigint * interval '1 microsecond', $${bind.length}::bigint)`,
      );
    }
    bind.push(limit);
    return this.db.read<RecordRow>(
      // Qualified: a bare "id" in ORDER BY would be the id::text output column (text order).
      `SELECT ${RECORD_COLUMNS} FROM usage_records r WHERE ${where.join(' AND ')}
        ORDER BY r.created_at DESC, r.id DESC LIMIT $${bind.length}`,
      bind,
    );
  }

  /** Whose data a request is about: the caller, or (supervisor/admin only) the user it names. */
  private targetOf(caller: Caller, requested: string | undefined): string {
    if (requested === undefined || requested === caller.userId) return caller.userId;
    if (caller.role === 'user') throw forbidden('Only supervisors and admins may act on another user');
    return requested;
  }

  private async readableTarget(caller: Caller, requested: string | undefined): Promise<string> {
    const target = this.targetOf(caller, requested);
    if (target !== caller.userId) await this.assertUserExists(target);
    return target;
  }

  private async assertUserExists(userId: string): Promise<void> {
    if (!(await this.users.userExists(userId))) throw notFound('User');
  }
}

/** The validated query's UTC days (validation already refused ranges that do not resolve). */
function dayRangeOf(query: StatsQuery): DayRange {
  const resolved = resolveDayRange(query);
  if ('path' in resolved) {
    throw new AppError('VALIDATION_ERROR', 'The request is not valid', {
      problems: [{ location: 'query', path: resolved.path, message: resolved.message }],
    });
  }
  return resolved.range;
}

const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

function byModelOf(rows: (SumColumns & { model_id: string })[]) {
  return rows
    .map((r) => ({ modelId: r.model_id === '' ? null : r.model_id, ...sums(r) }))
    .sort((a, b) => b.credits - a.credits || b.requests - a.requests || cmp(a.modelId ?? '', b.modelId ?? ''));
}

/** Every day of the range, zeros included, oldest first. */
function dailySeries(range: DayRange, rows: (SumColumns & { day: string })[]) {
  const byDay = new Map(rows.map((r) => [r.day, r]));
  const series: { date: string; requests: number; credits: number }[] = [];
  // Counted in days, not compared as text: the day after 9999-12-31 is written "+010000-01-01", which sorts
  // before it, and a text comparison never ended for a range ending on that day.
  const first = Date.parse(range.fromDay);
  const days = (Date.parse(range.toDay) - first) / DAY_MS;
  for (let i = 0; i <= days; i++) {
    const day = dayString(first + i * DAY_MS);
    const row = byDay.get(day);
    series.push({ date: day, requests: row ? countFromDb(row.requests) : 0, credits: row ? toCredits(fromDb(row.credits)) : 0 });
  }
  return series;
}

function cursorKeys(cursor: string | undefined): [string, string] | undefined {
  const keys = decodeCursor(cursor);
  if (keys === undefined) return undefined;
  const createdUs = keys.length === 2 ? cursorEpochMicros(keys[0]) : null;
  const id = keys.length === 2 ? cursorBigint(keys[1]) : null;
  if (createdUs === null || id === null) throw invalidCursor();
  return [createdUs, id];
}

export function recordView(row: RecordRow): UsageRecordView {
  return {
    id: row.id,
    userId: row.user_id,
    sessionId: row.session_id,
    service: row.service,
    operation: row.operation,
    modelId: row.model_id,
    priceVersion: row.price_version,
    inputTokens: countFromDb(row.input_tokens),
    outputTokens: countFromDb(row.output_tokens),
    cachedInputTokens: countFromDb(row.cached_input_tokens),
    cacheWriteTokens: countFromDb(row.cache_write_tokens),
    cacheWrite1hTokens: countFromDb(row.cache_write_1h_tokens),
    reasoningTokens: countFromDb(row.reasoning_tokens),
    credits: toCredits(fromDb(row.credits)),
    chargedCredits: toCredits(fromDb(row.charged_credits)),
    unpaidCredits: toCredits(fromDb(row.unpaid_credits)),
    refundedCredits: toCredits(fromDb(row.refunded_credits)),
    metadata: row.metadata,
    recordedBy: row.recorded_by,
    createdAt: row.created_at.toISOString(),
    occurredAt: row.created_at.toISOString(),
    recordedAt: (row.recorded_at ?? row.created_at).toISOString(),
  };
}

function csvLine(row: RecordRow): string {
  const fields = [
    row.id,
    row.created_at.toISOString(),
    csvField(row.user_id),
    csvField(row.service),
    csvField(row.operation),
    csvField(row.model_id),
    row.price_version === null ? '' : String(row.price_version),
    row.input_tokens,
    row.output_tokens,
    row.cached_input_tokens,
    row.cache_write_tokens,
    row.cache_write_1h_tokens,
    row.reasoning_tokens,
    formatCredits(fromDb(row.credits)),
    formatCredits(fromDb(row.charged_credits)),
    formatCredits(fromDb(row.unpaid_credits)),
    formatCredits(fromDb(row.refunded_credits)),
    csvField(row.session_id),
    csvField(row.recorded_by),
    csvField(row.metadata === null ? null : JSON.stringify(row.metadata)),
    (row.recorded_at ?? row.created_at).toISOString(),
  ];
  return fields.join(',') + '\r\n';
}
