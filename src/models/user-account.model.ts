import type { Sequelize } from 'sequelize';
import { nullableText, type RowModel, tableOptions, text, timestamp } from './columns';

export type Role = 'user' | 'supervisor' | 'admin';

/** A user mirrored from the Authentication service's token claims (user_accounts). */
export interface UserAccountAttributes {
  id: string;
  email: string | null;
  username: string | null;
  role: Role;
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
      createdAt: timestamp(),
      updatedAt: timestamp(),
    },
    { ...tableOptions, tableName: 'user_accounts' },
  );
}
