import { Client } from 'pg';
import { HOT_USER, USER_COUNT, USER_PREFIX } from './constants';

const MICRO = 1_000_000n;

/**
 * Seeds the benchmark's users straight through SQL, with the same rows acct_grant writes: a
 * user_accounts row, lots in credit_allocations, and one 'grant' ledger row per lot (so reconcile
 * holds). Every user gets two lots, one expiring in 30 days and one without expiry, so a hold locks
 * and orders more than one lot; the hot user gets two huge ones.
 */
export async function seedUsers(url: string, userCount = USER_COUNT): Promise<void> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    await client.query('BEGIN');
    await client.query(
      `INSERT INTO user_accounts (id, role)
       SELECT $1 || i, 'user' FROM generate_series(1, $2::int) AS i
       UNION ALL SELECT $3, 'user'`,
      [USER_PREFIX, userCount, HOT_USER],
    );
    await client.query(
      `WITH lots AS (
         INSERT INTO credit_allocations (user_id, total_credits, remaining_credits, expires_at, allocated_by, note)
         SELECT u.id, l.amount, l.amount, l.expires_at, 'bench-seed', 'benchmark seed'
           FROM user_accounts u
          CROSS JOIN LATERAL (VALUES
                 (CASE WHEN u.id = $1 THEN $2::bigint ELSE $3::bigint END, now() + interval '30 days'),
                 (CASE WHEN u.id = $1 THEN $2::bigint ELSE $3::bigint END, NULL::timestamptz)
               ) AS l (amount, expires_at)
          ORDER BY u.id, l.expires_at NULLS LAST
         RETURNING id, user_id, total_credits, allocated_by, note
       )
       INSERT INTO credit_transactions (user_id, type, amount, allocation_id, actor_id, note)
       SELECT user_id, 'grant', total_credits, id, allocated_by, note FROM lots`,
      [HOT_USER, (500_000_000n * MICRO).toString(), (500n * MICRO).toString()],
    );
    await client.query('COMMIT');
    await client.query('ANALYZE');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    await client.end();
  }
}
