import type { Database } from '../../src/db/database';

export interface RecordArgs {
  userId: string;
  service?: string;
  operation?: string;
  modelId?: string | null;
  inputTokens?: number;
  outputTokens?: number;
  cachedInputTokens?: number;
  /** Micro-credits. */
  credits: bigint;
  metadata?: Record<string, unknown> | null;
}

/**
 * Records usage through the production primitive (acct_record_charged_usage: record, rollups, charge)
 * as if the clock read `at`: the record's created_at comes from the column default, which this
 * transaction points at `at` and restores before committing. Exact to the microsecond.
 */
export async function recordAt(db: Database, at: string, args: RecordArgs): Promise<string> {
  // DDL takes no bind parameters: only a plain timestamp may be spliced in.
  if (!/^[0-9T:.+\-Z]+$/.test(at)) throw new Error(`recordAt: not a timestamp: ${at}`);
  return db.transaction(async (tx) => {
    await db.query(`ALTER TABLE usage_records ALTER COLUMN created_at SET DEFAULT '${at}'::timestamptz`, [], tx);
    const [row] = await db.query<{ id: string }>(
      `SELECT usage_record_id::text AS id FROM acct_record_charged_usage($1, $2, $3, $4, NULL, $5, $6, $7, $8, $9::jsonb, 'test')`,
      [
        args.userId,
        args.service ?? 'chat',
        args.operation ?? 'completion',
        args.modelId ?? null,
        args.inputTokens ?? 0,
        args.outputTokens ?? 0,
        args.cachedInputTokens ?? 0,
        args.credits.toString(),
        args.metadata ? JSON.stringify(args.metadata) : null,
      ],
      tx,
    );
    await db.query(`ALTER TABLE usage_records ALTER COLUMN created_at SET DEFAULT now()`, [], tx);
    return row.id;
  });
}

/**
 * Rebuilds every rollup from usage_records and counts the rows where the maintained rollup differs
 * (missing, extra or other figures). All zeros means the rollups are exactly the raw records.
 */
export async function rollupMismatches(db: Database): Promise<Record<string, number>> {
  const day = `(created_at AT TIME ZONE 'UTC')::date`;
  const figures = `count(*) AS requests, sum(credits) AS credits, sum(unpaid_credits) AS unpaid`;
  const checks: Record<string, string> = {
    usage_daily: `WITH truth AS (SELECT user_id, ${day} AS day, service, operation, coalesce(model_id, '') AS model_id, ${figures},
                                        sum(input_tokens) AS i, sum(output_tokens) AS o, sum(cached_input_tokens) AS c
                                   FROM usage_records GROUP BY 1, 2, 3, 4, 5)
                  SELECT count(*)::int AS n FROM truth FULL JOIN usage_daily r USING (user_id, day, service, operation, model_id)
                   WHERE (truth.requests, truth.credits, truth.unpaid, truth.i, truth.o, truth.c)
                         IS DISTINCT FROM (r.requests, r.credits, r.unpaid_credits, r.input_tokens, r.output_tokens, r.cached_input_tokens)`,
    usage_daily_system: `WITH truth AS (SELECT ${day} AS day, coalesce(model_id, '') AS model_id, acct_usage_shard(user_id) AS shard, ${figures},
                                               sum(input_tokens) AS i, sum(output_tokens) AS o, sum(cached_input_tokens) AS c
                                          FROM usage_records GROUP BY 1, 2, 3)
                         SELECT count(*)::int AS n FROM truth FULL JOIN usage_daily_system r USING (day, model_id, shard)
                          WHERE (truth.requests, truth.credits, truth.unpaid, truth.i, truth.o, truth.c)
                                IS DISTINCT FROM (r.requests, r.credits, r.unpaid_credits, r.input_tokens, r.output_tokens, r.cached_input_tokens)`,
    usage_user_daily: `WITH truth AS (SELECT ${day} AS day, user_id, ${figures} FROM usage_records GROUP BY 1, 2)
                       SELECT count(*)::int AS n FROM truth FULL JOIN usage_user_daily r USING (day, user_id)
                        WHERE (truth.requests, truth.credits, truth.unpaid) IS DISTINCT FROM (r.requests, r.credits, r.unpaid_credits)`,
    usage_user_weekly: `WITH truth AS (SELECT date_trunc('week', created_at AT TIME ZONE 'UTC')::date AS week, user_id, ${figures}
                                         FROM usage_records GROUP BY 1, 2)
                        SELECT count(*)::int AS n FROM truth FULL JOIN usage_user_weekly r USING (week, user_id)
                         WHERE (truth.requests, truth.credits, truth.unpaid) IS DISTINCT FROM (r.requests, r.credits, r.unpaid_credits)`,
    usage_totals: `SELECT count(*)::int AS n FROM
                     (SELECT sum(requests) AS requests, sum(credits) AS credits, sum(unpaid_credits) AS unpaid FROM usage_totals) t,
                     (SELECT ${figures} FROM usage_records) r
                    WHERE (coalesce(t.requests, 0), coalesce(t.credits, 0), coalesce(t.unpaid, 0))
                          IS DISTINCT FROM (r.requests, coalesce(r.credits, 0), coalesce(r.unpaid, 0))`,
  };
  const result: Record<string, number> = {};
  for (const [table, sql] of Object.entries(checks)) {
    const [row] = await db.query<{ n: number }>(sql);
    result[table] = row.n;
  }
  return result;
}

export const NO_MISMATCHES = { usage_daily: 0, usage_daily_system: 0, usage_user_daily: 0, usage_user_weekly: 0, usage_totals: 0 };
