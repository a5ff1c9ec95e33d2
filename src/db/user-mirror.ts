/**
 * The user mirror's SQL: a token's claims written into user_accounts. Shared by the auth middleware's upsert
 * (UserAccountService) and the ledger statements that mirror their caller in the same round trip.
 */

/** The claims a mirror writes (a TokenUser has them). */
export interface MirroredUser {
  userId: string;
  email: string | null;
  username: string | null;
  role: string;
  /** null or absent: the token names no org, and the stored one is kept. */
  orgId?: string | null;
}

/**
 * The mirror upsert with (id, email, username, role) at $first..$first+3. It writes only when the row is
 * missing or a claim changed: the NOT EXISTS check keeps the common case (already mirrored, e.g. by another
 * instance) read-only — no row lock on the user (which a money movement may hold), no transaction id, no
 * WAL flush at commit. Also usable as a data-modifying CTE in front of a read (see mirrorCte).
 */
export function mirrorSql(first: number): string {
  const [id, email, username, role, org] = [0, 1, 2, 3, 4].map((i) => `$${first + i}`);
  // The org ($first+4) is written only when the token names one: a token without it keeps the stored org.
  return `INSERT INTO user_accounts AS u (id, email, username, role, org_id)
  SELECT ${id}::text, ${email}::text, ${username}::text, ${role}::text, ${org}::text
   WHERE NOT EXISTS (SELECT 1 FROM user_accounts c
                      WHERE c.id = ${id}::text
                        AND (c.email, c.username, c.role) IS NOT DISTINCT FROM (${email}::text, ${username}::text, ${role}::text)
                        AND (${org}::text IS NULL OR c.org_id = ${org}::text))
  ON CONFLICT (id) DO UPDATE SET email = EXCLUDED.email, username = EXCLUDED.username, role = EXCLUDED.role,
                                 org_id = coalesce(EXCLUDED.org_id, u.org_id), updated_at = now()
   WHERE (u.email, u.username, u.role, coalesce(EXCLUDED.org_id, u.org_id))
         IS DISTINCT FROM (EXCLUDED.email, EXCLUDED.username, EXCLUDED.role, u.org_id)`;
}

/** `WITH mirrored AS (...)` for a read that mirrors its caller in the same statement (one round trip). */
export const mirrorCte = (first: number) => `WITH mirrored AS (${mirrorSql(first)} RETURNING 1)
`;
export const mirrorBind = (user: MirroredUser) => [user.userId, user.email, user.username, user.role, user.orgId ?? null];
