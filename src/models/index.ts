import { DataTypes, Model, type ModelStatic, type Sequelize } from 'sequelize';

/**
 * Typed Sequelize models over the tables in migrations/. Migrations own the schema (constraints,
 * functions); models are for reading and for simple writes. BIGINT columns come back from pg as
 * strings: convert them with src/lib/money.ts, never with Number() or parseFloat().
 */
export type Role = 'user' | 'supervisor' | 'admin';

export interface UserAccountAttributes {
  id: string;
  email: string | null;
  username: string | null;
  role: Role;
  createdAt: Date;
  updatedAt: Date;
}
export interface CreditAllocationAttributes {
  id: string;
  userId: string;
  totalCredits: string;
  remainingCredits: string;
  expiresAt: Date | null;
  allocatedBy: string;
  note: string | null;
  createdAt: Date;
}
export interface ModelPriceAttributes {
  modelId: string;
  priceVersion: number;
  inputPricePer1m: string;
  outputPricePer1m: string;
  cachedInputPricePer1m: string;
  effectiveFrom: Date;
  createdBy: string | null;
}
export type SessionStatus = 'active' | 'completed' | 'aborted' | 'expired';
export interface StreamingSessionAttributes {
  id: string;
  userId: string;
  modelId: string;
  priceVersion: number;
  status: SessionStatus;
  estimatedInputTokens: string | null;
  estimatedOutputTokens: string | null;
  estimatedCredits: string;
  allocatedCredits: string;
  usedCredits: string | null;
  refundedCredits: string | null;
  unpaidCredits: string;
  actualInputTokens: string | null;
  actualOutputTokens: string | null;
  cachedInputTokens: string | null;
  endReason: string | null;
  requestHash: string;
  expiresAt: Date;
  endedAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
}
export interface SessionHoldAttributes {
  sessionId: string;
  allocationId: string;
  userId: string;
  heldCredits: string;
  capturedCredits: string;
  releasedCredits: string;
}
export interface UsageRecordAttributes {
  id: string;
  userId: string;
  sessionId: string | null;
  service: string;
  operation: string;
  modelId: string | null;
  priceVersion: number | null;
  inputTokens: string;
  outputTokens: string;
  cachedInputTokens: string;
  credits: string;
  chargedCredits: string;
  unpaidCredits: string;
  metadata: Record<string, unknown> | null;
  recordedBy: string | null;
  createdAt: Date;
}
export type LedgerType = 'grant' | 'hold' | 'capture' | 'release' | 'charge' | 'expire' | 'adjust';
export interface CreditTransactionAttributes {
  id: string;
  userId: string;
  type: LedgerType;
  amount: string;
  allocationId: string | null;
  sessionId: string | null;
  usageRecordId: string | null;
  actorId: string | null;
  note: string | null;
  createdAt: Date;
}

type Row<T extends object> = Model<T, Partial<T>> & T;

export interface Models {
  UserAccount: ModelStatic<Row<UserAccountAttributes>>;
  CreditAllocation: ModelStatic<Row<CreditAllocationAttributes>>;
  ModelPrice: ModelStatic<Row<ModelPriceAttributes>>;
  StreamingSession: ModelStatic<Row<StreamingSessionAttributes>>;
  SessionHold: ModelStatic<Row<SessionHoldAttributes>>;
  UsageRecord: ModelStatic<Row<UsageRecordAttributes>>;
  CreditTransaction: ModelStatic<Row<CreditTransactionAttributes>>;
}

// Functions, not shared objects: Sequelize writes into each attribute definition it is given.
const bigint = () => ({ type: DataTypes.BIGINT, allowNull: false });
const nullableBigint = () => ({ type: DataTypes.BIGINT, allowNull: true });
const text = () => ({ type: DataTypes.TEXT, allowNull: false });
const nullableText = () => ({ type: DataTypes.TEXT, allowNull: true });
const options = { underscored: true, timestamps: false } as const;

export function defineModels(sequelize: Sequelize): Models {
  const UserAccount = sequelize.define<Row<UserAccountAttributes>>(
    'UserAccount',
    {
      id: { ...text(), primaryKey: true },
      email: nullableText(),
      username: nullableText(),
      role: text(),
      createdAt: { type: DataTypes.DATE, allowNull: false },
      updatedAt: { type: DataTypes.DATE, allowNull: false },
    },
    { ...options, tableName: 'user_accounts' },
  );
  const CreditAllocation = sequelize.define<Row<CreditAllocationAttributes>>(
    'CreditAllocation',
    {
      id: { ...bigint(), primaryKey: true, autoIncrement: true },
      userId: text(),
      totalCredits: bigint(),
      remainingCredits: bigint(),
      expiresAt: { type: DataTypes.DATE, allowNull: true },
      allocatedBy: text(),
      note: nullableText(),
      createdAt: { type: DataTypes.DATE, allowNull: false },
    },
    { ...options, tableName: 'credit_allocations' },
  );
  const ModelPrice = sequelize.define<Row<ModelPriceAttributes>>(
    'ModelPrice',
    {
      modelId: { ...text(), primaryKey: true },
      priceVersion: { type: DataTypes.INTEGER, allowNull: false, primaryKey: true },
      inputPricePer1m: { ...bigint(), field: 'input_price_per_1m' },
      outputPricePer1m: { ...bigint(), field: 'output_price_per_1m' },
      cachedInputPricePer1m: { ...bigint(), field: 'cached_input_price_per_1m' },
      effectiveFrom: { type: DataTypes.DATE, allowNull: false },
      createdBy: nullableText(),
    },
    { ...options, tableName: 'model_prices' },
  );
  const StreamingSession = sequelize.define<Row<StreamingSessionAttributes>>(
    'StreamingSession',
    {
      // Session ids are scoped to their user: the key is (user_id, id).
      userId: { ...text(), primaryKey: true },
      id: { ...text(), primaryKey: true },
      modelId: text(),
      priceVersion: { type: DataTypes.INTEGER, allowNull: false },
      status: text(),
      estimatedInputTokens: nullableBigint(),
      estimatedOutputTokens: nullableBigint(),
      estimatedCredits: bigint(),
      allocatedCredits: bigint(),
      usedCredits: nullableBigint(),
      refundedCredits: nullableBigint(),
      unpaidCredits: bigint(),
      actualInputTokens: nullableBigint(),
      actualOutputTokens: nullableBigint(),
      cachedInputTokens: nullableBigint(),
      endReason: nullableText(),
      requestHash: text(),
      expiresAt: { type: DataTypes.DATE, allowNull: false },
      endedAt: { type: DataTypes.DATE, allowNull: true },
      createdAt: { type: DataTypes.DATE, allowNull: false },
      updatedAt: { type: DataTypes.DATE, allowNull: false },
    },
    { ...options, tableName: 'streaming_sessions' },
  );
  const SessionHold = sequelize.define<Row<SessionHoldAttributes>>(
    'SessionHold',
    {
      userId: { ...text(), primaryKey: true },
      sessionId: { ...text(), primaryKey: true },
      allocationId: { ...bigint(), primaryKey: true },
      heldCredits: bigint(),
      capturedCredits: bigint(),
      releasedCredits: bigint(),
    },
    { ...options, tableName: 'session_holds' },
  );
  const UsageRecord = sequelize.define<Row<UsageRecordAttributes>>(
    'UsageRecord',
    {
      id: { ...bigint(), primaryKey: true, autoIncrement: true },
      userId: text(),
      sessionId: nullableText(),
      service: text(),
      operation: text(),
      modelId: nullableText(),
      priceVersion: { type: DataTypes.INTEGER, allowNull: true },
      inputTokens: bigint(),
      outputTokens: bigint(),
      cachedInputTokens: bigint(),
      credits: bigint(),
      chargedCredits: bigint(),
      unpaidCredits: bigint(),
      metadata: { type: DataTypes.JSONB, allowNull: true },
      recordedBy: nullableText(),
      createdAt: { type: DataTypes.DATE, allowNull: false },
    },
    { ...options, tableName: 'usage_records' },
  );
  const CreditTransaction = sequelize.define<Row<CreditTransactionAttributes>>(
    'CreditTransaction',
    {
      id: { ...bigint(), primaryKey: true, autoIncrement: true },
      userId: text(),
      type: text(),
      amount: bigint(),
      allocationId: nullableBigint(),
      sessionId: nullableText(),
      usageRecordId: nullableBigint(),
      actorId: nullableText(),
      note: nullableText(),
      createdAt: { type: DataTypes.DATE, allowNull: false },
    },
    { ...options, tableName: 'credit_transactions' },
  );
  return { UserAccount, CreditAllocation, ModelPrice, StreamingSession, SessionHold, UsageRecord, CreditTransaction };
}
