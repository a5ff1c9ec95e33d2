import type { Sequelize } from 'sequelize';
import { nullableText, type RowModel, tableOptions, text, timestamp } from './columns';

export type Role = 'user' | 'supervisor' | 'admin';

/** A user mirrored from the Authentication service's token claims (user_accounts). */
export interface UserAccountAttributes {
  id: string;
  email: string | null;
  username: string | null;
  role: Role;
  /** The user's organization (token claim JWT_ORG_CLAIM, or PUT /api/users/:userId/org); budgets may cap it. */
  orgId: string | null;
  createdAt: Date;
  updatedAt: Date;
}

export function defineUserAccount(sequelize: Sequelize): RowModel<UserAccountAttributes> {
  return sequelize.define(
    'UserAccount',
    {
      id: { ...text(), primaryKey: true },
      email: nullableText(),
      username: nullableText(),
      role: text(),
      orgId: nullableText(),
      createdAt: timestamp(),
      updatedAt: timestamp(),
    },
    { ...tableOptions, tableName: 'user_accounts' },
  );
}
