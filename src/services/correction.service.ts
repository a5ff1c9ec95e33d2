import type { Database } from '../db/database';
import { AppError, notFound } from '../lib/errors';
import { Metrics } from '../lib/metrics';
import { fromDb, toCredits } from '../lib/money';
import type { AdjustBody, RefundBody, RevokeBody } from '../schemas/correction.schemas';
import { toAllocationJson, toBalanceJson } from '../schemas/credit.schemas';
import { toLot, type CreditService, type LotRow } from './credit.service';
import type { IdempotencyContext, IdempotencyService, ServiceResponse } from './idempotency.service';
import { RECORD_COLUMNS, recordView, type RecordRow } from './usage.service';

export interface CorrectionOptions {
  /** New credits pay the oldest unpaid usage first (SETTLE_UNPAID_ON_GRANT). */
  settleUnpaidOnGrant: boolean;
}

/**
 * Corrections (issue 16): adjust, revoke a lot, refund a usage record. Each is one ledger function
 * (src/ledger/sql/acct_adjust|acct_revoke|acct_refund_usage) run inside the idempotency transaction; each
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

  /** Positive: a new lot (201). Negative: taken from available lots in consumption order (200), all or nothing. */
  async adjust(callerId: string, body: AdjustBody, idem: IdempotencyContext | undefined): Promise<ServiceResponse> {
    return this.idempotency.run(idem, async (tx) => {
      const [row] = await this.db.query<{ outcome: string; allocation_id: string | null; available_before: string; settled: string }>(
        `SELECT outcome, allocation_id::text, available_before::text, settled::text FROM acct_adjust($1, $2, $3, $4, $5, $6)`,
        [body.userId, body.credits.toString(), body.expiresAt ?? null, callerId, body.reason, this.options.settleUnpaidOnGrant],
        tx,
      );
      if (row.outcome === 'not_found') throw notFound('User');
      if (row.outcome === 'insufficient') {
        throw new AppError('INSUFFICIENT_CREDITS', 'Not enough available credits for this adjustment', {
          requiredCredits: toCredits(-body.credits),
          availableCredits: toCredits(fromDb(row.available_before)),
        });
      }
      const settled = fromDb(row.settled);
      tx.afterCommit(() => {
        if (body.credits > 0n) this.metrics.recordCredits('granted', body.credits);
        else this.metrics.recordCredits('charged', -body.credits);
      });
      let allocation = null;
      if (row.allocation_id !== null) {
        const [lot] = await this.db.query<LotRow>(`SELECT * FROM credit_allocations WHERE id = $1`, [row.allocation_id], tx);
        allocation = toAllocationJson(toLot(lot));
      }
      const balance = await this.credits.getBalance(body.userId, tx);
      return {
        status: body.credits > 0n ? 201 : 200,
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
  async revoke(callerId: string, allocationId: string, body: RevokeBody, idem: IdempotencyContext | undefined): Promise<ServiceResponse> {
    return this.idempotency.run(idem, async (tx) => {
      const [row] = await this.db.query<{ outcome: string; user_id: string | null; revoked: string | null; held: string | null }>(
        `SELECT outcome, user_id, revoked::text, held::text FROM acct_revoke($1, $2, $3, $4)`,
        [allocationId, body.credits === undefined ? null : body.credits.toString(), callerId, body.reason],
        tx,
      );
      if (row.outcome === 'not_found') throw notFound('Allocation');
      const [lot] = await this.db.query<LotRow>(`SELECT * FROM credit_allocations WHERE id = $1`, [allocationId], tx);
      return {
        status: 200,
        body: {
          allocationId,
          userId: row.user_id!,
          revokedCredits: toCredits(fromDb(row.revoked)),
          heldCredits: toCredits(fromDb(row.held)),
          allocation: toAllocationJson(toLot(lot)),
        },
      };
    });
  }

  /** Forgives unpaid credits first, then returns charged credits to their lots; never more than the cost. */
  async refund(callerId: string, recordId: string, body: RefundBody, idem: IdempotencyContext | undefined): Promise<ServiceResponse> {
    return this.idempotency.run(idem, async (tx) => {
      const [row] = await this.db.query<{ outcome: string; refundable: string | null; forgiven: string | null; returned: string | null }>(
        `SELECT outcome, refundable::text, forgiven::text, returned::text FROM acct_refund_usage($1, $2, $3, $4)`,
        [recordId, body.credits === undefined ? null : body.credits.toString(), callerId, body.reason],
        tx,
      );
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
              message: `must not exceed what is still refundable (${toCredits(fromDb(row.refundable))} credits)`,
            },
          ],
          refundableCredits: toCredits(fromDb(row.refundable)),
        });
      }
      const returned = fromDb(row.returned);
      tx.afterCommit(() => this.metrics.recordCredits('released', returned));
      const [record] = await this.db.query<RecordRow>(`SELECT ${RECORD_COLUMNS} FROM usage_records WHERE id = $1`, [recordId], tx);
      return {
        status: 200,
        body: { ...recordView(record), forgivenCredits: toCredits(fromDb(row.forgiven)), returnedCredits: toCredits(returned) },
      };
    });
  }
}
