import type { Database } from '../db/database';
import { ledgerOf } from '../ledger/ledger';
import { forbidden, notFound } from '../lib/errors';
import type { Micro } from '../lib/money';
import { decodeKeyCursor, encodeCursor } from '../schemas/common';
import {
  toBudgetExceededDetails,
  toBudgetJson,
  toBudgetStatusJson,
  type BudgetRow,
  type BudgetStatusQuery,
  type CreateBudgetBody,
  type ListBudgetsQuery,
  type UpdateBudgetBody,
} from '../schemas/budget.schemas';
import type { IdempotencyContext, IdempotencyService, Outcome } from './idempotency.service';
import type { PriceService } from './price.service';
import type { UserAccountService, Caller } from './user-account.service';


const BUDGET_COLUMNS = 'id::text, user_id, org_id, period, limit_credits::text, model_id, timezone, created_by, created_at, updated_at';
const isBudgetId = (id: string) => /^[1-9]\d{0,17}$/.test(id);

/**
 * Budgets (docs/budgets.md): spend caps per user or organization and calendar period. This service manages
 * them and reads their status; enforcement lives in the ledger functions (src/ledger/sql), in the same
 * statement as each hold and charge.
 */
export class BudgetService {
  constructor(
    private readonly db: Database,
    private readonly users: UserAccountService,
    private readonly prices: PriceService,
    private readonly idempotency: IdempotencyService,
  ) {}

  /**
   * POST /api/budgets: 201 with the budget. A user scope creates the user if unknown (like allocate). With an
   * Idempotency-Key a retry replays the budget instead of creating a second one (the console sends one).
   */
  async create(callerId: string, body: CreateBudgetBody, idem: IdempotencyContext | undefined): Promise<Outcome> {
    if (body.modelId !== undefined) await this.prices.current(body.modelId);
    const scope = body.scope as { userId?: string; orgId?: string };
    return this.idempotency.run(idem, async (tx) => {
      // Inside the key's transaction: a request refused for its key (422, 409) creates no user either.
      if (scope.userId !== undefined) await this.users.ensureExists(scope.userId, tx);
      const [row] = await this.db.query<BudgetRow>(
        `INSERT INTO budgets (user_id, org_id, period, limit_credits, model_id, timezone, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING ${BUDGET_COLUMNS}`,
        [scope.userId ?? null, scope.orgId ?? null, body.period, body.limitCredits.toString(), body.modelId ?? null, body.timezone ?? 'UTC', callerId],
        tx,
      );
      return { effect: 'created', body: toBudgetJson(row) };
    });
  }

  /** GET /api/budgets?userId=|orgId=: budgets of that scope (or all), oldest first. */
  async list(query: ListBudgetsQuery) {
    const after = this.cursorId(query.cursor);
    const rows = await this.db.query<BudgetRow>(
      `SELECT ${BUDGET_COLUMNS} FROM budgets
        WHERE ($1::text IS NULL OR user_id = $1) AND ($2::text IS NULL OR org_id = $2) AND ($3::bigint IS NULL OR id > $3::bigint)
        ORDER BY id LIMIT $4`,
      [query.userId ?? null, query.orgId ?? null, after, query.limit + 1],
    );
    const data = rows.slice(0, query.limit).map(toBudgetJson);
    return { data, nextCursor: rows.length > query.limit ? encodeCursor([data[data.length - 1].id]) : null };
  }

  /** PATCH /api/budgets/:id {limitCredits}: takes effect on the next decision; held and spent are kept. */
  async update(id: string, body: UpdateBudgetBody) {
    if (!isBudgetId(id)) throw notFound('Budget');
    const [row] = await this.db.query<BudgetRow>(
      `UPDATE budgets SET limit_credits = $2, updated_at = now() WHERE id = $1::bigint RETURNING ${BUDGET_COLUMNS}`,
      [id, body.limitCredits.toString()],
    );
    if (!row) throw notFound('Budget');
    return toBudgetJson(row);
  }

  /** DELETE /api/budgets/:id: the budget and its counters go; money is untouched (budgets never hold credits). */
  async remove(id: string): Promise<void> {
    if (!isBudgetId(id)) throw notFound('Budget');
    const rows = await this.db.transaction(async (tx) => {
      // Its charges reference the counters, which reference the budget: remove them first, counters in lock order.
      await this.db.query(`SELECT 1 FROM budget_counters WHERE budget_id = $1::bigint ORDER BY period_start FOR UPDATE`, [id], tx);
      await this.db.query(`DELETE FROM budget_charges WHERE budget_id = $1::bigint RETURNING 1`, [id], tx);
      return this.db.query(`DELETE FROM budgets WHERE id = $1::bigint RETURNING id`, [id], tx);
    });
    if (rows.length === 0) throw notFound('Budget');
  }

  /** PUT /api/users/:userId/org: the user's organization (null: none). Creates the user if unknown. */
  async setOrg(userId: string, orgId: string | null) {
    const [row] = await this.db.query<{ id: string; org_id: string | null }>(
      `INSERT INTO user_accounts (id, org_id) VALUES ($1, $2)
       ON CONFLICT (id) DO UPDATE SET org_id = EXCLUDED.org_id, updated_at = now()
       RETURNING id, org_id`,
      [userId, orgId],
    );
    return { userId: row.id, orgId: row.org_id };
  }

  /**
   * GET /api/budgets/status: the caller's budgets (their own and their org's), or, for supervisors and
   * admins, those of ?userId= or ?orgId=.
   */
  async status(caller: Caller, query: BudgetStatusQuery) {
    if (query.orgId !== undefined) {
      if (caller.role === 'user') throw forbidden('Only supervisors and admins may read an organization\u2019s budgets');
      return { data: await this.statusOf(null, query.orgId) };
    }
    const userId = query.userId ?? caller.userId;
    if (userId !== caller.userId && caller.role === 'user') throw forbidden('Only supervisors and admins may read other users\u2019 budgets');
    const user = await this.users.find(userId);
    if (!user && userId !== caller.userId) throw notFound('User');
    return { data: await this.statusOf(userId, user?.orgId ?? null) };
  }

  /** Status rows of a user's own budgets and their org's (either may be null). */
  async statusOf(userId: string | null, orgId: string | null) {
    const rows = await ledgerOf(this.db).budgetStatus({ userId, orgId });
    return rows.map(toBudgetStatusJson);
  }

  /**
   * For POST /api/credits/check: the BUDGET_EXCEEDED details of the first budget that `amount` more would
   * exceed right now, or null. A read (no locks): the answer may change before an initialize.
   */
  async refusal(userId: string, modelId: string | null, amount: Micro) {
    const refusal = await ledgerOf(this.db).budgetRefusal({ userId, modelId, amount });
    return refusal ? toBudgetExceededDetails(refusal) : null;
  }

  private cursorId(cursor: string | undefined): string | null {
    return decodeKeyCursor(cursor, isBudgetId);
  }
}
