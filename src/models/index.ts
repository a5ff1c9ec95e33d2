import type { Sequelize } from 'sequelize';
import type { RowModel } from './columns';
import { type BudgetAttributes, defineBudget } from './budget.model';
import { type BudgetChargeAttributes, defineBudgetCharge } from './budget-charge.model';
import { type BudgetCounterAttributes, defineBudgetCounter } from './budget-counter.model';
import { type CreditAllocationAttributes, defineCreditAllocation } from './credit-allocation.model';
import { type CreditScheduleAttributes, defineCreditSchedule } from './credit-schedule.model';
import { type CreditScheduleGrantAttributes, defineCreditScheduleGrant } from './credit-schedule-grant.model';
import { type CreditTransactionAttributes, defineCreditTransaction } from './credit-transaction.model';
import { defineIdempotencyKey, type IdempotencyKeyAttributes } from './idempotency-key.model';
import { defineModelPrice, type ModelPriceAttributes } from './model-price.model';
import { defineSessionHold, type SessionHoldAttributes } from './session-hold.model';
import { defineSessionStatusCount, type SessionStatusCountAttributes } from './session-status-count.model';
import { defineSweeperBackoff, type SweeperBackoffAttributes } from './sweeper-backoff.model';
import { defineReconcileCheckpoint, defineReconcileDirty, type ReconcileCheckpointAttributes, type ReconcileDirtyAttributes } from './reconcile.model';
import { defineStreamingSession, type StreamingSessionAttributes } from './streaming-session.model';
import { defineUsageDaily, type UsageDailyAttributes } from './usage-daily.model';
import { defineUsageDailySystem, type UsageDailySystemAttributes } from './usage-daily-system.model';
import { defineUsageRecord, type UsageRecordAttributes } from './usage-record.model';
import { defineUsageTotal, type UsageTotalAttributes } from './usage-total.model';
import { defineUsageUserDaily, type UsageUserDailyAttributes } from './usage-user-daily.model';
import { defineUsageUserWeekly, type UsageUserWeeklyAttributes } from './usage-user-weekly.model';
import { defineUserAccount, type UserAccountAttributes } from './user-account.model';
// Events and webhooks (issue 15).
import { defineEvent, type EventAttributes } from './event.model';
import { defineEventSettings, type EventSettingsAttributes } from './event-settings.model';
import { defineUserEventState, type UserEventStateAttributes } from './user-event-state.model';
import { defineWebhookAttempt, type WebhookAttemptAttributes } from './webhook-attempt.model';
import { defineWebhookDelivery, type WebhookDeliveryAttributes } from './webhook-delivery.model';
import { defineWebhookEndpoint, type WebhookEndpointAttributes } from './webhook-endpoint.model';

export type { Row, RowModel } from './columns';
export type { BudgetAttributes, BudgetPeriod } from './budget.model';
export type { CreditAllocationAttributes } from './credit-allocation.model';
export type { CreditTransactionAttributes, LedgerType } from './credit-transaction.model';
export type { IdempotencyKeyAttributes } from './idempotency-key.model';
export type { ModelPriceAttributes } from './model-price.model';
export type { SessionHoldAttributes } from './session-hold.model';
export type { StreamingSessionAttributes, SessionStatus } from './streaming-session.model';
export type { UsageRecordAttributes } from './usage-record.model';
export type { Role, UserAccountAttributes } from './user-account.model';

/**
 * Every table's model, one file each. Migrations own the schema (constraints, functions, triggers);
 * models are for reads and simple writes, and tests/foundation/models-match-tables.test.ts keeps each
 * model's attributes equal to its table's columns.
 */
export interface Models {
  UserAccount: RowModel<UserAccountAttributes>;
  CreditAllocation: RowModel<CreditAllocationAttributes>;
  ModelPrice: RowModel<ModelPriceAttributes>;
  StreamingSession: RowModel<StreamingSessionAttributes>;
  SessionHold: RowModel<SessionHoldAttributes>;
  UsageRecord: RowModel<UsageRecordAttributes>;
  CreditTransaction: RowModel<CreditTransactionAttributes>;
  IdempotencyKey: RowModel<IdempotencyKeyAttributes>;
  UsageDaily: RowModel<UsageDailyAttributes>;
  UsageDailySystem: RowModel<UsageDailySystemAttributes>;
  UsageTotal: RowModel<UsageTotalAttributes>;
  UsageUserDaily: RowModel<UsageUserDailyAttributes>;
  UsageUserWeekly: RowModel<UsageUserWeeklyAttributes>;
  SessionStatusCount: RowModel<SessionStatusCountAttributes>;
  CreditSchedule: RowModel<CreditScheduleAttributes>;
  CreditScheduleGrant: RowModel<CreditScheduleGrantAttributes>;
  // Events and webhooks (issue 15).
  Event: RowModel<EventAttributes>;
  EventSettings: RowModel<EventSettingsAttributes>;
  UserEventState: RowModel<UserEventStateAttributes>;
  WebhookEndpoint: RowModel<WebhookEndpointAttributes>;
  WebhookDelivery: RowModel<WebhookDeliveryAttributes>;
  WebhookAttempt: RowModel<WebhookAttemptAttributes>;
  SweeperBackoff: RowModel<SweeperBackoffAttributes>;
  Budget: RowModel<BudgetAttributes>;
  BudgetCounter: RowModel<BudgetCounterAttributes>;
  BudgetCharge: RowModel<BudgetChargeAttributes>;
  // Incremental reconcile (issue 18).
  ReconcileCheckpoint: RowModel<ReconcileCheckpointAttributes>;
  ReconcileDirty: RowModel<ReconcileDirtyAttributes>;
}

export function defineModels(sequelize: Sequelize): Models {
  const models: Models = {
    UserAccount: defineUserAccount(sequelize),
    CreditAllocation: defineCreditAllocation(sequelize),
    ModelPrice: defineModelPrice(sequelize),
    StreamingSession: defineStreamingSession(sequelize),
    SessionHold: defineSessionHold(sequelize),
    UsageRecord: defineUsageRecord(sequelize),
    CreditTransaction: defineCreditTransaction(sequelize),
    IdempotencyKey: defineIdempotencyKey(sequelize),
    UsageDaily: defineUsageDaily(sequelize),
    UsageDailySystem: defineUsageDailySystem(sequelize),
    UsageTotal: defineUsageTotal(sequelize),
    UsageUserDaily: defineUsageUserDaily(sequelize),
    UsageUserWeekly: defineUsageUserWeekly(sequelize),
    SessionStatusCount: defineSessionStatusCount(sequelize),
    CreditSchedule: defineCreditSchedule(sequelize),
    CreditScheduleGrant: defineCreditScheduleGrant(sequelize),
    // Events and webhooks (issue 15).
    Event: defineEvent(sequelize),
    EventSettings: defineEventSettings(sequelize),
    UserEventState: defineUserEventState(sequelize),
    WebhookEndpoint: defineWebhookEndpoint(sequelize),
    WebhookDelivery: defineWebhookDelivery(sequelize),
    WebhookAttempt: defineWebhookAttempt(sequelize),
    SweeperBackoff: defineSweeperBackoff(sequelize),
    Budget: defineBudget(sequelize),
    BudgetCounter: defineBudgetCounter(sequelize),
    BudgetCharge: defineBudgetCharge(sequelize),
    ReconcileCheckpoint: defineReconcileCheckpoint(sequelize),
    ReconcileDirty: defineReconcileDirty(sequelize),
  };
  associate(models);
  return models;
}

/** The code map's relations: a user has many lots, sessions and usage records; a session holds from lots. */
function associate(m: Models): void {
  const byUser = { foreignKey: 'userId', constraints: false } as const;
  m.UserAccount.hasMany(m.CreditAllocation, { ...byUser, as: 'allocations' });
  m.UserAccount.hasMany(m.StreamingSession, { ...byUser, as: 'sessions' });
  m.UserAccount.hasMany(m.UsageRecord, { ...byUser, as: 'usageRecords' });
  m.UserAccount.hasMany(m.CreditTransaction, { ...byUser, as: 'transactions' });
  m.CreditAllocation.belongsTo(m.UserAccount, { ...byUser, as: 'user' });
  m.StreamingSession.belongsTo(m.UserAccount, { ...byUser, as: 'user' });
  m.UsageRecord.belongsTo(m.UserAccount, { ...byUser, as: 'user' });
  // Holds belong to (user_id, session_id); Sequelize associations take one column, so the join also needs userId.
  m.StreamingSession.hasMany(m.SessionHold, { foreignKey: 'sessionId', sourceKey: 'id', constraints: false, as: 'holds' });
}
