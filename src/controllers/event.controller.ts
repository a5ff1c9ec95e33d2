import type { RequestHandler } from 'express';
import type { EventsQuery } from '../schemas/event.schemas';
import type { CreateWebhookBody, DeliveriesQuery, UpdateWebhookBody } from '../schemas/webhook.schemas';
import type { EventService } from '../services/event.service';
import type { WebhookService } from '../services/webhook.service';

/** /api/events and /api/webhooks (issue 15). */
export class EventController {
  constructor(
    private readonly events: EventService,
    private readonly webhooks: WebhookService,
  ) {}

  /** GET /api/events */
  list: RequestHandler = async (req, res) => {
    res.json(await this.events.list(req.auth!, req.valid.query as EventsQuery));
  };

  /** POST /api/webhooks (admin) */
  createWebhook: RequestHandler = async (req, res) => {
    res.status(201).json(await this.webhooks.create(req.auth!.userId, req.valid.body as CreateWebhookBody));
  };

  /** GET /api/webhooks (admin) */
  listWebhooks: RequestHandler = async (req, res) => {
    res.json(await this.webhooks.list(req.valid.query as { limit: number; cursor?: string }));
  };

  /** GET /api/webhooks/:id (admin) */
  getWebhook: RequestHandler = async (req, res) => {
    res.json(await this.webhooks.get(req.valid.params.id as string));
  };

  /** PATCH /api/webhooks/:id (admin) */
  updateWebhook: RequestHandler = async (req, res) => {
    res.json(await this.webhooks.update(req.valid.params.id as string, req.valid.body as UpdateWebhookBody));
  };

  /** DELETE /api/webhooks/:id (admin) */
  deleteWebhook: RequestHandler = async (req, res) => {
    await this.webhooks.remove(req.valid.params.id as string);
    res.status(204).end();
  };

  /** POST /api/webhooks/:id/test (admin) */
  testWebhook: RequestHandler = async (req, res) => {
    res.json(await this.webhooks.test(req.auth!.userId, req.valid.params.id as string));
  };

  /** GET /api/webhooks/:id/deliveries (admin) */
  deliveries: RequestHandler = async (req, res) => {
    res.json(await this.webhooks.deliveries(req.valid.params.id as string, req.valid.query as DeliveriesQuery));
  };

  /** POST /api/webhooks/:id/deliveries/:deliveryId/retry (admin) */
  retryDelivery: RequestHandler = async (req, res) => {
    res.status(202).json(await this.webhooks.retry(req.valid.params.id as string, req.valid.params.deliveryId as string));
  };
}
