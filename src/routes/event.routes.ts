import { EventController } from '../controllers/event.controller';
import { listQuery } from '../schemas/common';
import { eventsQuery, eventsResponse } from '../schemas/event.schemas';
import {
  createdWebhookSchema,
  createWebhookBody,
  deliveriesQuery,
  deliveriesResponse,
  deliveryParams,
  deliverySchema,
  updateWebhookBody,
  webhookIdParams,
  webhookSchema,
  webhooksResponse,
} from '../schemas/webhook.schemas';
import type { Services } from '../services';
import { route, type RouteSpec } from './route-table';

/** /api/events (issue 15): the outbox as a log a consumer can page through and catch up on. */
export function eventRoutes(services: Services): RouteSpec[] {
  const controller = new EventController(services.events, services.webhooks);
  return [
    route({
      method: 'get',
      path: '/api/events',
      summary: 'Events, oldest first, after an event id (exclusive); users see their own, admins everyone\u2019s',
      tags: ['Events'],
      access: 'user',
      request: { query: eventsQuery },
      responses: { 200: { description: 'A page of events', schema: eventsResponse } },
      errors: ['FORBIDDEN'],
      handle: controller.list,
    }),
  ];
}

/** /api/webhooks (issue 15, admin): endpoints, test sends, deliveries and retries. */
export function webhookRoutes(services: Services): RouteSpec[] {
  const c = new EventController(services.events, services.webhooks);
  const base = { tags: ['Webhooks'], access: 'admin' as const };
  return [
    route({
      ...base,
      method: 'post',
      path: '/api/webhooks',
      summary: 'Create a webhook endpoint; the response carries its signing secret, shown only once',
      request: { body: createWebhookBody },
      responses: { 201: { description: 'The endpoint and its secret', schema: createdWebhookSchema } },
      handle: c.createWebhook,
    }),
    route({
      ...base,
      method: 'get',
      path: '/api/webhooks',
      summary: 'List webhook endpoints',
      request: { query: listQuery },
      responses: { 200: { description: 'Endpoints', schema: webhooksResponse } },
      handle: c.listWebhooks,
    }),
    route({
      ...base,
      method: 'get',
      path: '/api/webhooks/:id',
      summary: 'One webhook endpoint',
      request: { params: webhookIdParams },
      responses: { 200: { description: 'The endpoint', schema: webhookSchema } },
      errors: ['NOT_FOUND'],
      handle: c.getWebhook,
    }),
    route({
      ...base,
      method: 'patch',
      path: '/api/webhooks/:id',
      summary: 'Change an endpoint\u2019s url, events, description, or enable/disable it',
      request: { params: webhookIdParams, body: updateWebhookBody },
      responses: { 200: { description: 'The endpoint', schema: webhookSchema } },
      errors: ['NOT_FOUND'],
      handle: c.updateWebhook,
    }),
    route({
      ...base,
      method: 'delete',
      path: '/api/webhooks/:id',
      summary: 'Delete an endpoint and its deliveries',
      request: { params: webhookIdParams },
      responses: { 204: { description: 'Deleted' } },
      errors: ['NOT_FOUND'],
      handle: c.deleteWebhook,
    }),
    route({
      ...base,
      method: 'post',
      path: '/api/webhooks/:id/test',
      summary: 'Send a webhook.test event to this endpoint now and return the delivery with its attempt',
      request: { params: webhookIdParams },
      responses: { 200: { description: 'The test delivery', schema: deliverySchema } },
      errors: ['NOT_FOUND'],
      handle: c.testWebhook,
    }),
    route({
      ...base,
      method: 'get',
      path: '/api/webhooks/:id/deliveries',
      summary: 'Deliveries to this endpoint, newest first, each with its attempts (time, status code, duration, error)',
      request: { params: webhookIdParams, query: deliveriesQuery },
      responses: { 200: { description: 'Deliveries', schema: deliveriesResponse } },
      errors: ['NOT_FOUND'],
      handle: c.deliveries,
    }),
    route({
      ...base,
      method: 'post',
      path: '/api/webhooks/:id/deliveries/:deliveryId/retry',
      summary: 'Make a delivery due again now (whatever its status, unless it is being attempted)',
      request: { params: deliveryParams },
      responses: { 202: { description: 'The delivery, due now', schema: deliverySchema } },
      errors: ['NOT_FOUND', 'CONFLICT'],
      handle: c.retryDelivery,
    }),
  ];
}
