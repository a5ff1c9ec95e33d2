import type { Database } from '../../src/db/database';
import { fromDb, parseCredits, type Micro } from '../../src/lib/money';

/** Credits (as the API writes them) to micro-credits, for arranging and asserting. */
export function micro(credits: number | string): Micro {
  const parsed = parseCredits(credits);
  if (!parsed.ok) throw new Error(`bad credits in test: ${credits}`);
  return parsed.value;
}

/** Arranges a lot directly through the ledger primitive (the user row is created if needed). */
export async function grantDirect(db: Database, userId: string, credits: number | string, expiresAt: Date | null = null): Promise<string> {
  await db.query(`INSERT INTO user_accounts (id) VALUES ($1) ON CONFLICT DO NOTHING RETURNING 1`, [userId]);
  const [row] = await db.query<{ id: string }>(`SELECT acct_grant($1, $2, $3, 'test', NULL)::text AS id`, [
    userId,
    micro(credits).toString(),
    expiresAt,
  ]);
  return row.id;
}

/** Available micro-credits for a user, read straight from the tables. */
export async function availableOf(db: Database, userId: string): Promise<Micro> {
  const [row] = await db.query<{ available: string }>(`SELECT acct_available($1) AS available`, [userId]);
  return fromDb(row.available);
}

export async function count(db: Database, table: string, where = 'true', bind: unknown[] = []): Promise<number> {
  const [row] = await db.query<{ n: string }>(`SELECT count(*) AS n FROM ${table} WHERE ${where}`, bind);
  return Number(row.n);
}

/**
 * GET /api/events shows an event once every older writing transaction on the server has ended (so a cursor
 * never skips one that commits late). Other test files write on the same server at the same time, so tests
 * wait for that horizon to pass their committed events before reading the log (bounded, 30 s).
 */
export async function allEventsVisible(db: Database): Promise<void> {
  const until = Date.now() + 30_000;
  for (;;) {
    const [row] = await db.query<{ hidden: string }>(
      `SELECT count(*) AS hidden FROM events WHERE txid >= pg_snapshot_xmin(pg_current_snapshot())::text::bigint`,
    );
    if (Number(row.hidden) === 0) return;
    if (Date.now() > until) throw new Error(`${row.hidden} committed events stayed hidden behind an older open transaction`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
