import type { Response } from 'express';
import { send } from '../middleware/idempotency.middleware';
import type { Input } from '../routes/route-table';
import type { Page } from '../schemas/common';
import type { EventsQuery } from '../schemas/event.schemas';
import type { CreateWebhookBody, DeliveriesQuery, UpdateWebhookBody } from '../schemas/webhook.schemas';
import type { EventService } from '../services/event.service';
import type { WebhookService } from '../services/webhook.service';

type IdParams = { params: { id: string } };

/** /api/events and /api/webhooks (issue 15). */
export class EventController {
  constructor(
    private readonly events: EventService,
    private readonly webhooks: WebhookService,
  ) {}

  /** GET /api/events */
  list = async ({ query, caller }: Input<{ query: EventsQuery }>, res: Response) => {
    res.json(await this.events.list(caller, query));
  };

  /** POST /api/webhooks (admin) */
  createWebhook = async ({ body, caller }: Input<{ body: CreateWebhookBody }>, res: Response) => {
    send(res, { effect: 'created', body: await this.webhooks.create(caller.userId, body) });
  };

  /** GET /api/webhooks (admin) */
  listWebhooks = async ({ query }: Input<{ query: Page }>, res: Response) => {
    res.json(await this.webhooks.list(query));
  };

  /** GET /api/webhooks/:id (admin) */
  getWebhook = async ({ params }: Input<IdParams>, res: Response) => {
    res.json(await this.webhooks.get(params.id));
  };

  /** PATCH /api/webhooks/:id (admin) */
  updateWebhook = async ({ params, body }: Input<IdParams & { body: UpdateWebhookBody }>, res: Response) => {
    res.json(await this.webhooks.update(params.id, body));
  };

  /** DELETE /api/webhooks/:id (admin) */
  deleteWebhook = async ({ params }: Input<IdParams>, res: Response) => {
    await this.webhooks.remove(params.id);
    send(res, { effect: 'deleted', body: null });
  };

  /** POST /api/webhooks/:id/test (admin) */
  testWebhook = async ({ params, caller }: Input<IdParams>, res: Response) => {
    res.json(await this.webhooks.test(caller.userId, params.id));
  };

  /** GET /api/webhooks/:id/deliveries (admin) */
  deliveries = async ({ params, query }: Input<IdParams & { query: DeliveriesQuery }>, res: Response) => {
    res.json(await this.webhooks.deliveries(params.id, query));
  };

  /** POST /api/webhooks/:id/deliveries/:deliveryId/retry (admin) */
  retryDelivery = async ({ params }: Input<{ params: { id: string; deliveryId: string } }>, res: Response) => {
    send(res, { effect: 'accepted', body: await this.webhooks.retry(params.id, params.deliveryId) });
  };
}
