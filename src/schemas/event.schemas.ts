import { userId, timestamp, z } from './common';

/** Every event type the outbox carries (docs/events.md has each payload). */
export const EVENT_TYPES = [
  'credits.granted',
  'credits.adjusted',
  'credits.low',
  'credits.depleted',
  'credits.expiring',
  'credits.expired',
  'session.expired',
  'session.overage',
  'usage.refunded',
  'budget.threshold',
  'webhook.disabled',
  'webhook.test',
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

export const eventType = z.enum(EVENT_TYPES);

/** A public event id: `evt_` and the outbox row's number. */
export const eventId = z.string().regex(/^evt_[1-9]\d{0,17}$/, 'must be an event id (evt_...)');

export const eventSchema = z
  .object({
    id: z.string().openapi({ example: 'evt_42' }),
    type: eventType,
    createdAt: timestamp,
    userId: z.string().nullable(),
    orgId: z.string().optional(),
    data: z.record(z.string(), z.unknown()),
  })
  .openapi('Event');

export const eventsQuery = z
  .object({
    type: eventType.optional(),
    userId: userId.optional(),
    after: eventId.optional(),
    cursor: eventId.optional(),
    limit: z.coerce.number().int().min(1).max(500).default(50),
  })
  .strict();
export type EventsQuery = z.infer<typeof eventsQuery>;

export const eventsResponse = z.object({ data: z.array(eventSchema), nextCursor: z.string().nullable() });
