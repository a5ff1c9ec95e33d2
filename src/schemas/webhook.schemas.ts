import { EVENT_TYPES } from './event.schemas';
import { timestamp, z } from './common';

const subscribable = EVENT_TYPES.filter((t) => t !== 'webhook.test');

/** `["*"]` (every type) or a non-empty list of event types. */
const eventFilter = z
  .array(z.union([z.literal('*'), z.enum(subscribable as [string, ...string[]])]))
  .min(1)
  .max(EVENT_TYPES.length + 1)
  .refine((list) => !list.includes('*') || list.length === 1, 'use ["*"] alone or a list of event types')
  .openapi({ example: ['credits.low', 'credits.depleted'] });

const url = z.string().min(1).max(2048).openapi({ example: 'https://billing.example.com/webhooks/accounting' });
const description = z.string().max(500);

export const createWebhookBody = z.object({ url, events: eventFilter, description: description.optional() }).strict();
export type CreateWebhookBody = z.infer<typeof createWebhookBody>;

export const updateWebhookBody = z
  .object({ url: url.optional(), events: eventFilter.optional(), description: description.nullable().optional(), enabled: z.boolean().optional() })
  .strict()
  .refine((body) => Object.keys(body).length > 0, 'give at least one of url, events, description, enabled');
export type UpdateWebhookBody = z.infer<typeof updateWebhookBody>;

export const webhookIdParams = z.object({ id: z.string().min(1).max(255) });
export const deliveryParams = z.object({ id: z.string().min(1).max(255), deliveryId: z.string().min(1).max(255) });

export const webhookSchema = z
  .object({
    id: z.string(),
    url: z.string(),
    events: z.array(z.string()),
    description: z.string().nullable(),
    enabled: z.boolean(),
    disabledReason: z.string().nullable(),
    consecutiveFailures: z.number().int(),
    createdAt: timestamp,
    updatedAt: timestamp,
  })
  .openapi('Webhook');

export const createdWebhookSchema = webhookSchema
  .extend({ secret: z.string().openapi({ description: 'The signing secret (whsec_...), shown only in this response' }) })
  .openapi('CreatedWebhook');

export const attemptSchema = z.object({
  attemptedAt: timestamp,
  statusCode: z.number().int().nullable(),
  durationMs: z.number().int(),
  error: z.string().nullable(),
  success: z.boolean(),
});

export const deliverySchema = z
  .object({
    id: z.string(),
    webhookId: z.string(),
    eventId: z.string(),
    eventType: z.string(),
    status: z.enum(['pending', 'delivering', 'succeeded', 'failed']),
    attemptCount: z.number().int(),
    nextAttemptAt: timestamp.nullable(),
    lastStatusCode: z.number().int().nullable(),
    lastError: z.string().nullable(),
    createdAt: timestamp,
    deliveredAt: timestamp.nullable(),
    attempts: z.array(attemptSchema),
  })
  .openapi('WebhookDelivery');

export const webhooksResponse = z.object({ data: z.array(webhookSchema), nextCursor: z.string().nullable() });
export const deliveriesQuery = z.object({
  limit: z.coerce.number().int().min(1).max(500).default(50),
  cursor: z.string().min(1).max(512).optional(),
  status: z.enum(['pending', 'delivering', 'succeeded', 'failed']).optional(),
}).strict();
export type DeliveriesQuery = z.infer<typeof deliveriesQuery>;
export const deliveriesResponse = z.object({ data: z.array(deliverySchema), nextCursor: z.string().nullable() });
