import type { RequestHandler } from 'express';
import { notFound } from '../lib/errors';
import type { UserAccountService } from '../services/user-account.service';

export class UserAccountController {
  constructor(private readonly users: UserAccountService) {}

  /** GET /api/me: who the token says you are, as mirrored into user_accounts. */
  me: RequestHandler = async (req, res) => {
    const account = await this.users.find(req.auth!.userId);
    if (!account) throw notFound('User');
    res.json({
      userId: account.id,
      email: account.email,
      username: account.username,
      role: account.role,
      orgId: account.orgId,
      createdAt: account.createdAt,
    });
  };
}
