import type { Response } from 'express';
import { notFound } from '../lib/errors';
import type { Input } from '../routes/route-table';
import type { UserAccountService } from '../services/user-account.service';

export class UserAccountController {
  constructor(private readonly users: UserAccountService) {}

  /** GET /api/me: who the token says you are, mirrored into user_accounts. */
  me = async ({ caller }: Input, res: Response) => {
    const account = await this.users.find(caller.userId);
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
