import type { Database } from '../db/database';
import { ledgerOf } from '../ledger/ledger';
import { AppError, notFound } from '../lib/errors';
import { Metrics } from '../lib/metrics';
import { fromDb, toCredits } from '../lib/money';
import type { AdjustBody, CreateScheduleBody, RefundBody, RerateBody, RevokeBody, SchedulesQuery } from '../schemas/correction.schemas';
import { decodeKeyCursor, encodeCursor } from '../schemas/common';
import { toAllocationJson, toBalanceJson } from '../schemas/credit.schemas';
import { toLot, type CreditService, type LotRow } from './credit.service';
import type { IdempotencyContext, IdempotencyService, Outcome } from './idempotency.service';
import { RECORD_COLUMNS, recordView, type RecordRow } from './usage.service';

export interface CorrectionOptions {
  /** New credits pay the oldest unpaid usage first (SETTLE_UNPAID_ON_GRANT). */
  settleUnpaidOnGrant: boolean;
}

/**
 * Corrections (issue 16): adjust, revoke a lot, refund a usage record. Each is one ledger function
 * (Ledger.adjust / revoke / refundUsage) run inside the idempotency transaction; each
 * writes new ledger rows with the actor and the reason, never edits old ones.
 */
export class CorrectionService {
  constructor(
    private readonly db: Database,
    private readonly credits: CreditService,
    private readonly idempotency: IdempotencyService,
    private readonly options: CorrectionOptions,
    private readonly metrics: Metrics = new Metrics(),
  ) {}

  private get ledger() {
    return ledgerOf(this.db);
  }

  /** Positive: a new lot (201). Negative: taken from available lots in consumption order (200), all or nothing. */
  async adjust(callerId: string, body: AdjustBody, idem: IdempotencyContext | undefined): Promise<Outcome> {
    return this.idempotency.run(idem, async (tx) => {
      const row = await this.ledger.adjust(
        {
          userId: body.userId,
          amount: body.credits,
          expiresAt: body.expiresAt ?? null,
          actorId: callerId,
          reason: body.reason,
          settleUnpaid: this.options.settleUnpaidOnGrant,
        },
        tx,
      );
      if (row.outcome === 'not_found') throw notFound('User');
      if (row.outcome === 'insufficient') {
        throw new AppError('INSUFFICIENT_CREDITS', 'Not enough available credits for this adjustment', {
          requiredCredits: toCredits(-body.credits),
          availableCredits: toCredits(row.availableBefore),
        });
      }
      const settled = row.settled;
      tx.afterCommit(() => {
        if (body.credits > 0n) this.metrics.recordCredits('granted', body.credits);
        else this.metrics.recordCredits('charged', -body.credits);
      });
      let allocation = null;
      if (row.allocationId !== null) {
        const [lot] = await this.db.query<LotRow>(`SELECT * FROM credit_allocations WHERE id = $1`, [row.allocationId], tx);
        allocation = toAllocationJson(toLot(lot));
      }
      const balance = await this.credits.getBalance(body.userId, tx);
      return {
        effect: body.credits > 0n ? 'created' : 'done',
        body: {
          userId: body.userId,
          credits: toCredits(body.credits),
          reason: body.reason,
          allocation,
          settledCredits: toCredits(settled),
          balance: toBalanceJson(balance),
        },
      };
    });
  }

  /** Voids what is left of a lot (or part of it); what active sessions hold is reported, not revoked. */
  async revoke(callerId: string, allocationId: string, body: RevokeBody, idem: IdempotencyContext | undefined): Promise<Outcome> {
    return this.idempotency.run(idem, async (tx) => {
      const row = await this.ledger.revoke({ allocationId, amount: body.credits ?? null, actorId: callerId, reason: body.reason }, tx);
      if (row.outcome === 'not_found') throw notFound('Allocation');
      const [lot] = await this.db.query<LotRow>(`SELECT * FROM credit_allocations WHERE id = $1`, [allocationId], tx);
      return {
        effect: 'done',
        body: {
          allocationId,
          userId: row.userId,
          revokedCredits: toCredits(row.revoked),
          heldCredits: toCredits(row.held),
          allocation: toAllocationJson(toLot(lot)),
        },
      };
    });
  }

  /** Forgives unpaid credits first, then returns charged credits to their lots; never more than the cost. */
  async refund(callerId: string, recordId: string, body: RefundBody, idem: IdempotencyContext | undefined): Promise<Outcome> {
    return this.idempotency.run(idem, async (tx) => {
      const row = await this.ledger.refundUsage({ recordId, amount: body.credits ?? null, actorId: callerId, reason: body.reason }, tx);
      if (row.outcome === 'not_found') throw notFound('Usage record');
      if (row.outcome === 'session_expired') {
        throw new AppError('CONFLICT', 'The session of this record expired and may still be finalized late: finalize or abort it first');
      }
      if (row.outcome === 'too_much') {
        throw new AppError('VALIDATION_ERROR', 'The request is not valid', {
          problems: [
            {
              location: 'body',
              path: 'credits',
              message: `must not exceed what is still refundable (${toCredits(row.refundable)} credits)`,
            },
          ],
          refundableCredits: toCredits(row.refundable),
        });
      }
      const returned = row.returned;
      tx.afterCommit(() => this.metrics.recordCredits('released', returned));
      const [record] = await this.db.query<RecordRow>(`SELECT ${RECORD_COLUMNS} FROM usage_records WHERE id = $1`, [recordId], tx);
      return {
        effect: 'done',
        body: { ...recordView(record), forgivenCredits: toCredits(row.forgiven), returnedCredits: toCredits(returned) },
      };
    });
  }

  // ---------- schedules (recurring grants) ----------

  /** A recurring grant; its first period is the one containing startAt (default now). Idempotent. */
  async createSchedule(callerId: string, body: CreateScheduleBody, idem: IdempotencyContext | undefined): Promise<Outcome> {
    return this.idempotency.run(idem, async (tx) => {
      // The database must know the zone too (Intl and PostgreSQL both use IANA names; versions may differ).
      const [zone] = await this.db.query(`SELECT 1 FROM pg_timezone_names WHERE name = $1`, [body.timezone ?? 'UTC'], tx);
      if (!zone) {
        throw new AppError('VALIDATION_ERROR', 'The request is not valid', {
          problems: [{ location: 'body', path: 'timezone', message: 'is not a time zone the database knows' }],
        });
      }
      await this.ledger.lockUser(body.userId, tx);
      const [row] = await this.db.query<ScheduleRow>(
        `INSERT INTO credit_schedules (user_id, credits, period, timezone, expire_at_period_end, expires_in_days,
                                       rollover_cap_credits, start_at, next_period_start, created_by)
         SELECT $1, $2, $3, $4, $5, $6, $7, s.start_at, date_trunc($3, s.start_at, $4), $8
           FROM (SELECT coalesce($9::timestamptz, now()) AS start_at) s
         RETURNING ${SCHEDULE_COLUMNS}`,
        [
          body.userId,
          body.credits.toString(),
          body.period,
          body.timezone ?? 'UTC',
          body.expireAtPeriodEnd ?? false,
          body.expiresInDays ?? null,
          body.rolloverCapCredits === undefined ? null : body.rolloverCapCredits.toString(),
          callerId,
          body.startAt ?? null,
        ],
        tx,
      );
      return { effect: 'created', body: scheduleView(row) };
    });
  }

  /** Schedules, oldest first, optionally of one user; deleted ones are listed with deletedAt. */
  async listSchedules(query: SchedulesQuery) {
    const after = decodeKeyCursor(query.cursor, (key) => /^\d{1,18}$/.test(key));
    const rows = await this.db.query<ScheduleRow>(
      `SELECT ${SCHEDULE_COLUMNS} FROM credit_schedules
        WHERE ($1::text IS NULL OR user_id = $1) AND ($2::bigint IS NULL OR id > $2::bigint)
        ORDER BY id LIMIT $3`,
      [query.userId ?? null, after, query.limit + 1],
    );
    const pageRows = rows.slice(0, query.limit);
    return {
      data: pageRows.map(scheduleView),
      nextCursor: rows.length > query.limit ? encodeCursor([String(pageRows[pageRows.length - 1].id)]) : null,
    };
  }

  /** Stops a schedule: no period is granted after this; grants already made stay. Deleting twice is 404. */
  async deleteSchedule(id: string) {
    const [row] = await this.db.query<ScheduleRow>(
      `UPDATE credit_schedules SET deleted_at = now() WHERE id = $1 AND deleted_at IS NULL RETURNING ${SCHEDULE_COLUMNS}`,
      [id],
    );
    if (!row) throw notFound('Schedule');
    return scheduleView(row);
  }

  /**
   * Grants every due period of every schedule as of `now`, one (schedule, period) per transaction
   * (Ledger.grantOneScheduled), at most `max` per call. Safe in any number of instances at once.
   */
  async materializeSchedules(now: Date = new Date(), max = 1000): Promise<number> {
    let granted = 0;
    for (let i = 0; i < max; i++) {
      const credits = await this.ledger.grantOneScheduled({ now, settleUnpaid: this.options.settleUnpaidOnGrant });
      if (credits === null) break;
      if (credits === 0n) continue; // a period skipped because the user is at the credits cap (Ledger.grantOneScheduled)
      this.metrics.recordCredits('granted', credits);
      granted++;
    }
    return granted;
  }

  // ---------- re-rate ----------

  /**
   * Re-prices the records of modelId@fromPriceVersion created in [from, to] at toPriceVersion, each user in
   * batches of RERATE_BATCH records per transaction (Ledger.rerateUser), so no user's lock is held long. Each
   * record moves to the new version in the transaction that charges or refunds its difference: a second run
   * (or a retry after a crash) finds nothing left to do. With dryRun, one read reports what would change.
   */
  async rerate(callerId: string, body: RerateBody, idem: IdempotencyContext | undefined): Promise<Outcome> {
    const versions = await this.db.query<{ price_version: number }>(
      `SELECT price_version FROM model_prices WHERE model_id = $1 AND price_version IN ($2, $3)`,
      [body.modelId, body.fromPriceVersion, body.toPriceVersion],
    );
    const problems = (['fromPriceVersion', 'toPriceVersion'] as const)
      .filter((field) => !versions.some((v) => v.price_version === body[field]))
      .map((field) => ({ location: 'body', path: field, message: `${body.modelId} has no price version ${body[field]}` }));
    if (problems.length > 0) throw new AppError('VALIDATION_ERROR', 'The request is not valid', { problems });

    if (body.dryRun) {
      const diff = await this.ledger.rerateDryRun({
        modelId: body.modelId,
        fromVersion: body.fromPriceVersion,
        toVersion: body.toPriceVersion,
        from: body.from,
        to: body.to,
      });
      return {
        effect: 'done',
        body: { records: diff.records, creditsCharged: toCredits(diff.charged), creditsRefunded: toCredits(diff.refunded), dryRun: true },
      };
    }

    const replay = await this.idempotency.peek(idem);
    if (replay) return replay;
    const users = await this.db.query<{ user_id: string }>(
      `SELECT DISTINCT user_id FROM usage_records WHERE model_id = $1 AND price_version = $2 AND created_at BETWEEN $3 AND $4`,
      [body.modelId, body.fromPriceVersion, body.from, body.to],
    );
    let records = 0;
    let charged = 0n;
    let refunded = 0n;
    for (const { user_id: userId } of users) {
      for (;;) {
        const row = await this.db.transaction((tx) =>
          this.ledger.rerateUser(
            {
              userId,
              modelId: body.modelId,
              fromVersion: body.fromPriceVersion,
              toVersion: body.toPriceVersion,
              from: body.from,
              to: body.to,
              limit: RERATE_BATCH,
              actorId: callerId,
            },
            tx,
          ),
        );
        records += row.records;
        charged += row.charged;
        refunded += row.refunded;
        // A batch also stops at its time budget (Ledger.rerateUser): done only when one finds nothing.
        if (row.records === 0) break;
      }
    }
    const report = { records, creditsCharged: toCredits(charged), creditsRefunded: toCredits(refunded), dryRun: false };
    return this.idempotency.run(idem, async () => ({ effect: 'done', body: report }));
  }
}

/** Most records re-rated per user transaction (each also stops after 10 ms of work): a user's other requests never wait long. */
const RERATE_BATCH = 200;

const SCHEDULE_COLUMNS = `id::text, user_id, credits::text, period, timezone, expire_at_period_end, expires_in_days,
  rollover_cap_credits::text, start_at, next_period_start, created_by, created_at, deleted_at`;

interface ScheduleRow {
  id: string;
  user_id: string;
  credits: string;
  period: 'day' | 'week' | 'month';
  timezone: string;
  expire_at_period_end: boolean;
  expires_in_days: number | null;
  rollover_cap_credits: string | null;
  start_at: Date;
  next_period_start: Date;
  created_by: string;
  created_at: Date;
  deleted_at: Date | null;
}

const scheduleView = (row: ScheduleRow) => ({
  id: row.id,
  userId: row.user_id,
  credits: toCredits(fromDb(row.credits)),
  period: row.period,
  timezone: row.timezone,
  expireAtPeriodEnd: row.expire_at_period_end,
  expiresInDays: row.expires_in_days,
  rolloverCapCredits: row.rollover_cap_credits === null ? null : toCredits(fromDb(row.rollover_cap_credits)),
  startAt: row.start_at.toISOString(),
  nextPeriodStart: row.next_period_start.toISOString(),
  createdBy: row.created_by,
  createdAt: row.created_at.toISOString(),
  deletedAt: row.deleted_at === null ? null : row.deleted_at.toISOString(),
});
