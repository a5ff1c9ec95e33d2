import type { Transaction } from 'sequelize';
import type { Database } from '../db/database';
import type { Role, UserAccountAttributes } from '../models';

export interface TokenUser {
  userId: string;
  email: string | null;
  username: string | null;
  role: Role;
}

const MAX_CACHED_USERS = 50_000;

/**
 * Mirrors token users into user_accounts. Every authenticated request would otherwise write a row, so
 * each process remembers for a short TTL which (user, email, username, role) it has already written.
 * The cache only skips a redundant upsert; PostgreSQL stays the source of truth.
 */
export class UserAccountService {
  private readonly synced = new Map<string, number>();

  constructor(
    private readonly db: Database,
    private readonly cacheTtlMs: number,
  ) {}

  async findOrCreateUser(user: TokenUser): Promise<void> {
    const cacheKey = JSON.stringify([user.userId, user.email, user.username, user.role]);
    const now = Date.now();
    const syncedAt = this.synced.get(cacheKey);
    if (syncedAt !== undefined && now - syncedAt < this.cacheTtlMs) return;
    await this.db.query(
      `INSERT INTO user_accounts AS u (id, email, username, role) VALUES ($1, $2, $3, $4)
       ON CONFLICT (id) DO UPDATE SET email = EXCLUDED.email, username = EXCLUDED.username,
                                      role = EXCLUDED.role, updated_at = now()
        WHERE (u.email, u.username, u.role) IS DISTINCT FROM (EXCLUDED.email, EXCLUDED.username, EXCLUDED.role)
       RETURNING 1`,
      [user.userId, user.email, user.username, user.role],
    );
    if (this.synced.size >= MAX_CACHED_USERS) this.synced.clear();
    this.synced.set(cacheKey, now);
  }

  /** Creates a user known only by id (e.g. the target of an allocation) if it does not exist yet. */
  async ensureExists(userId: string, tx?: Transaction): Promise<void> {
    await this.db.query(
      `INSERT INTO user_accounts (id) VALUES ($1) ON CONFLICT (id) DO NOTHING RETURNING 1`,
      [userId],
      tx,
    );
  }

  async find(userId: string, tx?: Transaction): Promise<UserAccountAttributes | null> {
    const row = await this.db.models.UserAccount.findByPk(userId, { transaction: tx, raw: true });
    return (row as UserAccountAttributes | null) ?? null;
  }
}
