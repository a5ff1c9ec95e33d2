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
