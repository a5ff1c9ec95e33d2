import crypto from 'node:crypto';
import type { Database } from '../db/database';
import { AppError, notFound } from '../lib/errors';
import { encryptSecret, generateWebhookSecret } from '../lib/webhook-secrets';
import { webhookUrlProblem } from '../lib/webhook-url';
import { decodeKeyCursor, encodeCursor } from '../schemas/common';
import type { CreateWebhookBody, DeliveriesQuery, UpdateWebhookBody } from '../schemas/webhook.schemas';
import type { EventService } from './event.service';
import type { WebhookDispatcher } from './webhook-dispatcher';

interface EndpointRow {
  id: string;
  url: string;
  events: string[];
  description: string | null;
  enabled: boolean;
  disabled_reason: string | null;
  consecutive_failures: number;
  created_at: Date;
  updated_at: Date;
}

const ENDPOINT_COLUMNS = 'id, url, events, description, enabled, disabled_reason, consecutive_failures, created_at, updated_at';

const toWebhookJson = (row: EndpointRow) => ({
  id: row.id,
  url: row.url,
  events: row.events,
  description: row.description,
  enabled: row.enabled,
  disabledReason: row.disabled_reason,
  consecutiveFailures: row.consecutive_failures,
  createdAt: row.created_at.toISOString(),
  updatedAt: row.updated_at.toISOString(),
});

interface DeliveryRow {
  id: string;
  endpoint_id: string;
  event_id: string;
  event_type: string;
  status: 'pending' | 'delivering' | 'succeeded' | 'failed';
  attempts: number;
  next_attempt_at: Date;
  last_status_code: number | null;
  last_error: string | null;
  created_at: Date;
  delivered_at: Date | null;
  attempt_log: Array<{ attempted_at: string; status_code: number | null; duration_ms: number; error: string | null; success: boolean }>;
}

const DELIVERY_SELECT = `
  SELECT d.id, d.endpoint_id, d.event_id, e.type AS event_type, d.status, d.attempts, d.next_attempt_at, d.last_status_code,
         d.last_error, d.created_at, d.delivered_at,
         coalesce((SELECT json_agg(json_build_object('attempted_at', a.attempted_at, 'status_code', a.status_code,
                                                     'duration_ms', a.duration_ms, 'error', a.error, 'success', a.success)
                                   ORDER BY a.id DESC)
                     FROM webhook_attempts a WHERE a.delivery_id = d.id), '[]'::json) AS attempt_log
    FROM webhook_deliveries d JOIN events e ON e.id = d.event_id AND e.created_at = d.event_created_at`;

const toDeliveryJson = (row: DeliveryRow) => ({
  id: String(row.id),
  webhookId: row.endpoint_id,
  eventId: `evt_${row.event_id}`,
  eventType: row.event_type,
  status: row.status,
  attemptCount: row.attempts,
  nextAttemptAt: row.status === 'pending' || row.status === 'delivering' ? row.next_attempt_at.toISOString() : null,
  lastStatusCode: row.last_status_code,
  lastError: row.last_error,
  createdAt: row.created_at.toISOString(),
  deliveredAt: row.delivered_at ? row.delivered_at.toISOString() : null,
  attempts: row.attempt_log.map((a) => ({
    attemptedAt: new Date(a.attempted_at).toISOString(),
    statusCode: a.status_code,
    durationMs: a.duration_ms,
    error: a.error,
    success: a.success,
  })),
});

const invalid = (path: string, message: string) =>
  new AppError('VALIDATION_ERROR', 'The request is not valid', { problems: [{ location: 'body', path, message }] });


/** An endpoint's id as create() makes it; a list cursor naming anything else is forged (400). */
const WEBHOOK_ID = /^wh_[0-9a-f]{24}$/;

/** Webhook endpoints (admin): CRUD, test sends, deliveries and manual retries. Sending is the dispatcher's. */
export class WebhookService {
  constructor(
    private readonly db: Database,
    private readonly events: EventService,
    private readonly dispatcher: WebhookDispatcher,
    private readonly options: { allowPrivate: boolean; secretKey?: Buffer },
  ) {}

  async create(callerId: string, body: CreateWebhookBody) {
    this.checkUrl(body.url);
    if (!this.options.secretKey) {
      throw new AppError('CONFLICT', 'Webhooks need WEBHOOK_SECRET_KEY on this service: with JWT_ALGORITHM=RS256 there is no secret to encrypt their signing secrets with');
    }
    const secretKey = this.options.secretKey;
    const secret = generateWebhookSecret();
    const id = `wh_${crypto.randomBytes(12).toString('hex')}`;
    const [row] = await this.db.query<EndpointRow>(
      `INSERT INTO webhook_endpoints (id, url, events, description, secret_encrypted, created_by)
       VALUES ($1, $2, $3::text[], $4, $5, $6) RETURNING ${ENDPOINT_COLUMNS}`,
      [id, body.url, body.events, body.description ?? null, encryptSecret(secret, secretKey), callerId],
    );
    // The secret is returned here only; afterwards it exists encrypted in the database alone.
    return { ...toWebhookJson(row), secret };
  }

  async list(query: { limit: number; cursor?: string }) {
    const after = decodeKeyCursor(query.cursor, (key) => WEBHOOK_ID.test(key));
    const rows = await this.db.query<EndpointRow>(
      `SELECT ${ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE ($1::text IS NULL OR id > $1) ORDER BY id LIMIT $2`,
      [after, query.limit + 1],
    );
    const data = rows.slice(0, query.limit).map(toWebhookJson);
    return { data, nextCursor: rows.length > query.limit ? encodeCursor([data[data.length - 1].id]) : null };
  }

  async get(id: string) {
    return toWebhookJson(await this.find(id));
  }

  async update(id: string, body: UpdateWebhookBody) {
    if (body.url !== undefined) this.checkUrl(body.url);
    const [row] = await this.db.query<EndpointRow>(
      `UPDATE webhook_endpoints
          SET url = coalesce($2, url), events = coalesce($3::text[], events),
              description = CASE WHEN $4::boolean THEN $5 ELSE description END,
              enabled = coalesce($6, enabled),
              -- Re-enabling starts a new run of failures.
              consecutive_failures = CASE WHEN $6 THEN 0 ELSE consecutive_failures END,
              disabled_reason = CASE WHEN $6 IS NULL THEN disabled_reason WHEN $6 THEN NULL ELSE 'disabled by an admin' END,
              updated_at = now()
        WHERE id = $1
      RETURNING ${ENDPOINT_COLUMNS}`,
      [id, body.url ?? null, body.events ?? null, body.description !== undefined, body.description ?? null, body.enabled ?? null],
    );
    if (!row) throw notFound('Webhook');
    return toWebhookJson(row);
  }

  async remove(id: string): Promise<void> {
    const rows = await this.db.query(`DELETE FROM webhook_endpoints WHERE id = $1 RETURNING id`, [id]);
    if (rows.length === 0) throw notFound('Webhook');
  }

  /**
   * Sends a `webhook.test` event to this endpoint now (enabled or not) and returns the delivery with its
   * attempt. The event is in the log like any other but is never fanned out to other endpoints.
   */
  async test(callerId: string, id: string) {
    await this.find(id);
    const deliveryId = await this.db.transaction(async (tx) => {
      const eventId = await this.events.emit('webhook.test', callerId, { webhookId: id, message: 'A test event sent from the accounting service' }, tx);
      const [delivery] = await this.db.query<{ id: string }>(
        `WITH ev AS (UPDATE events SET fanned_out = true WHERE id = $2 RETURNING id, created_at)
         INSERT INTO webhook_deliveries (endpoint_id, event_id, event_created_at) SELECT $1, id, created_at FROM ev RETURNING id`,
        [id, eventId.slice('evt_'.length)],
        tx,
      );
      return String(delivery.id);
    });
    await this.dispatcher.deliverNow(deliveryId);
    return this.delivery(id, deliveryId);
  }

  async deliveries(id: string, query: DeliveriesQuery) {
    await this.find(id);
    const before = decodeKeyCursor(query.cursor, (key) => /^\d{1,18}$/.test(key));
    const rows = await this.db.query<DeliveryRow>(
      `${DELIVERY_SELECT}
        WHERE d.endpoint_id = $1 AND ($2::bigint IS NULL OR d.id < $2::bigint) AND ($3::text IS NULL OR d.status = $3)
        ORDER BY d.id DESC LIMIT $4`,
      [id, before, query.status ?? null, query.limit + 1],
    );
    const data = rows.slice(0, query.limit).map(toDeliveryJson);
    return { data, nextCursor: rows.length > query.limit ? encodeCursor([data[data.length - 1].id]) : null };
  }

  /** Makes a delivery due now (any status but in flight). Its retry window still counts from its creation. */
  async retry(id: string, deliveryId: string) {
    if (!/^\d{1,18}$/.test(deliveryId)) throw notFound('Delivery');
    const [current] = await this.db.query<{ status: string; in_flight: boolean }>(
      `SELECT status, (status = 'delivering' AND next_attempt_at > now()) AS in_flight
         FROM webhook_deliveries WHERE id = $1 AND endpoint_id = $2`,
      [deliveryId, id],
    );
    if (!current) throw notFound('Delivery');
    if (current.in_flight) throw new AppError('CONFLICT', 'The delivery is being attempted right now');
    await this.db.query(
      `UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = now()
        WHERE id = $1 AND NOT (status = 'delivering' AND next_attempt_at > now()) RETURNING id`,
      [deliveryId],
    );
    return this.delivery(id, deliveryId);
  }

  private async delivery(endpointId: string, deliveryId: string) {
    const [row] = await this.db.query<DeliveryRow>(`${DELIVERY_SELECT} WHERE d.id = $1 AND d.endpoint_id = $2`, [deliveryId, endpointId]);
    if (!row) throw notFound('Delivery');
    return toDeliveryJson(row);
  }

  private async find(id: string): Promise<EndpointRow> {
    const [row] = await this.db.query<EndpointRow>(`SELECT ${ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1`, [id]);
    if (!row) throw notFound('Webhook');
    return row;
  }

  private checkUrl(url: string): void {
    const problem = webhookUrlProblem(url, this.options.allowPrivate);
    if (problem) throw invalid('url', problem);
  }
}
