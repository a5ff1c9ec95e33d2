import type { Transaction } from 'sequelize';
import type { Database } from '../db/database';
import { mirrorBind, mirrorSql } from '../db/user-mirror';
import type { Role, UserAccountAttributes } from '../models';

/** Who calls or acts: the one caller/actor type every service takes. */
export interface Caller {
  userId: string;
  role: Role;
}

/** A caller as the verified token names them (mirrored into user_accounts). */
export interface TokenUser extends Caller {
  email: string | null;
  username: string | null;
  /** The token's org claim (JWT_ORG_CLAIM); null when the token carries none (the stored org is kept). */
  orgId?: string | null;
}

const MAX_CACHED_USERS = 50_000;
const claimsOf = (user: TokenUser) => JSON.stringify([user.email, user.username, user.role]);

/**
 * Mirrors token users into user_accounts. Every authenticated request would otherwise write a row, so
 * each process remembers for a short TTL the claims it last wrote for each user, and skips the upsert
 * while a token carries the same ones. The cache only skips a redundant upsert; PostgreSQL stays the
 * source of truth. It is never trusted for the org: a token that names one is mirrored at every request
 * (read-only when nothing changed), because budgets follow the stored org, and that may have been changed
 * since by PUT /api/users/:userId/org, by another instance, or by this user's earlier token with another
 * org: API.md says the token wins. (Keyed by user, not by claims: a token with claims seen before, after
 * others, is written again.)
 */
export class UserAccountService {
  private readonly synced = new Map<string, { claims: string; at: number }>();

  constructor(
    private readonly db: Database,
    private readonly cacheTtlMs: number,
  ) {}

  async findOrCreateUser(user: TokenUser): Promise<void> {
    if (this.isSynced(user)) return;
    // The mirror converges to the same row however often it runs, so a lost connection may rerun it.
    await this.db.prepared('user_mirror', mirrorSql(1), mirrorBind(user), { rerunnable: true });
    this.markSynced(user);
  }

  /** True when this process last mirrored exactly these claims for the user within the TTL and the token names no org. */
  isSynced(user: TokenUser): boolean {
    if (user.orgId != null) return false;
    const entry = this.synced.get(user.userId);
    return entry !== undefined && entry.claims === claimsOf(user) && Date.now() - entry.at < this.cacheTtlMs;
  }

  /**
   * For routes whose own statement mirrors the caller (RouteSpec.mirrorsUser): the claims to mirror, or
   * null when this process mirrored them lately. Call markSynced once that statement has committed.
   */
  pendingMirror(user: TokenUser): TokenUser | null {
    return this.isSynced(user) ? null : user;
  }

  /** Records a mirror done elsewhere (initialize mirrors the caller inside its own statement). */
  markSynced(user: TokenUser): void {
    if (this.synced.size >= MAX_CACHED_USERS) this.synced.clear();
    this.synced.set(user.userId, { claims: claimsOf(user), at: Date.now() });
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

  /** Whether this service has seen the user (a token, a grant or a usage record naming them). */
  async userExists(userId: string): Promise<boolean> {
    return (await this.db.models.UserAccount.count({ where: { id: userId } })) > 0;
  }
}
