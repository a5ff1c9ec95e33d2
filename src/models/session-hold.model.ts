import type { Sequelize } from 'sequelize';
import { bigint, type RowModel, tableOptions, text } from './columns';

/** One leg of a hold: what a session drew from one lot, and how much of it was captured or released (session_holds). */
export interface SessionHoldAttributes {
  sessionId: string;
  allocationId: string;
  userId: string;
  heldCredits: string;
  capturedCredits: string;
  releasedCredits: string;
}

export function defineSessionHold(sequelize: Sequelize): RowModel<SessionHoldAttributes> {
  return sequelize.define(
    'SessionHold',
    {
      userId: { ...text(), primaryKey: true },
      sessionId: { ...text(), primaryKey: true },
      allocationId: { ...bigint(), primaryKey: true },
      heldCredits: bigint(),
      capturedCredits: bigint(),
      releasedCredits: bigint(),
    },
    { ...tableOptions, tableName: 'session_holds' },
  );
}
