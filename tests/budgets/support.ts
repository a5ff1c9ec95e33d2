import type { Database } from '../../src/db/database';

/** A budget's counter of one period straight from the table (micro-credits), or zeros before its first use. */
export async function counterOf(db: Database, budgetId: string, periodStart?: Date): Promise<{ spent: bigint; held: bigint }> {
  const rows = await db.query<{ spent: string; held: string }>(
    `SELECT spent_credits::text AS spent, held_credits::text AS held FROM budget_counters k JOIN budgets b ON b.id = k.budget_id
      WHERE k.budget_id = $1::bigint
        AND k.period_start = coalesce($2::timestamptz, acct_budget_period_start(b.period, b.timezone, now()))`,
    [budgetId, periodStart ?? null],
  );
  return rows[0] ? { spent: BigInt(rows[0].spent), held: BigInt(rows[0].held) } : { spent: 0n, held: 0n };
}

/** Budget discrepancies (counters vs the charges that built them); empty when they add up. */
export async function budgetProblems(db: Database): Promise<unknown[]> {
  return db.query(`SELECT * FROM acct_budget_reconcile()`);
}
