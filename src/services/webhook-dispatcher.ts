import http from 'node:http';
import https from 'node:https';
import { isIP } from 'node:net';
import { Webhook } from 'standardwebhooks';
import type { Database } from '../db/database';
import { ledgerOf } from '../ledger/ledger';
import type { Logger } from '../lib/logger';
import type { Metrics } from '../lib/metrics';
import { decryptSecret } from '../lib/webhook-secrets';
import { isPublicAddress, publicOnlyLookup } from '../lib/webhook-url';
import { toEventJson, type EventRow } from './event.service';

export interface DispatcherOptions {
  timeoutMs: number;
  retryBaseMs: number;
  retryHours: number;
  concurrencyPerEndpoint: number;
  disableAfterFailures: number;
  allowPrivate: boolean;
  /** Absent: no endpoint can have been created (webhook.service.ts refuses), so nothing is signed. */
  secretKey?: Buffer;
}

interface Claimed {
  id: string;
  endpoint_id: string;
  event_id: string;
  attempts: number;
  created_at: Date;
  url: string;
  secret_encrypted: string;
  was_delivered: boolean;
  ev_type: EventRow['type'];
  ev_created_at: Date;
  ev_user_id: string | null;
  ev_org_id: string | null;
  ev_data: Record<string, unknown>;
}

export interface AttemptResult {
  success: boolean;
  statusCode: number | null;
  durationMs: number;
  error: string | null;
  outcome: 'success' | 'http_error' | 'timeout' | 'network_error';
}

/** Largest response body read from a receiver (the rest is discarded). */
const MAX_RESPONSE_BYTES = 64 * 1024;
/** Longest backoff between two attempts of one delivery. */
const MAX_BACKOFF_MS = 60 * 60 * 1000;

/**
 * Sends outbox events to webhook endpoints, from the background jobs of every instance at once:
 *  1. fan-out: events not yet fanned out (claimed FOR UPDATE SKIP LOCKED) get one delivery per subscribed endpoint;
 *  2. claim: due deliveries are leased (status `delivering` until next_attempt_at) in a short transaction that
 *     first locks their endpoints (SKIP LOCKED), so the per-endpoint concurrency limit holds across instances
 *     and a delivery is in flight in at most one place; a crashed instance's lease simply runs out;
 *  3. send, outside any transaction, signed per Standard Webhooks; then record the attempt and schedule the
 *     next one (exponential backoff with jitter) or finish the delivery.
 * A slow endpoint only occupies its own slots: sends are not awaited by the claiming loop.
 */
export class WebhookDispatcher {
  private readonly inFlight = new Set<Promise<void>>();
  private readonly httpAgent: http.Agent;
  private readonly httpsAgent: https.Agent;

  constructor(
    private readonly db: Database,
    private readonly options: DispatcherOptions,
    private readonly metrics: Metrics,
    private readonly logger?: Logger,
  ) {
    // Keep-alive agents of this dispatcher only (closed by close()).
    this.httpAgent = new http.Agent({ keepAlive: true });
    this.httpsAgent = new https.Agent({ keepAlive: true });
  }

  /** How long a claim lasts: a send always ends (timeout) well before another instance may take it over. */
  private get leaseMs(): number {
    return this.options.timeoutMs + 30_000;
  }

  /**
   * One round: fan out new events, claim what is due and start sending it. Returns how many deliveries it
   * started. With `wait`, resolves only when those sends are recorded (tests, manual runs).
   */
  async tick({ wait = false, maxClaims = 200 } = {}): Promise<number> {
    // Fan out the whole backlog (bounded: each round takes 500 events until fewer are left).
    for (let round = 0; round < 100 && (await this.fanOut(500)) === 500; round++) {
      // keep going
    }
    const claimed = await this.claim(maxClaims);
    const sends = claimed.map((delivery) => this.track(this.deliver(delivery)));
    if (wait) await Promise.all(sends);
    return claimed.length;
  }

  /**
   * Runs rounds until nothing is due anywhere (for tests and draining a backlog); bounded by `maxRounds`.
   * A round that claims nothing while deliveries are still due (another instance holds their endpoint this
   * instant) goes on rather than stopping.
   */
  async runUntilIdle(maxRounds = 1000): Promise<void> {
    for (let i = 0; i < maxRounds; i++) {
      if ((await this.tick({ wait: true })) > 0) continue;
      const [due] = await this.db.query<{ any: boolean }>(
        `SELECT EXISTS (SELECT 1 FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id AND e.enabled
                         WHERE d.status IN ('pending', 'delivering') AND d.next_attempt_at <= now()) AS any`,
      );
      if (!due.any) return;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }

  /** Waits for the sends this process has started. */
  async drain(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.all([...this.inFlight]);
  }

  async close(): Promise<void> {
    await this.drain();
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }

  /** Creates deliveries for up to `batch` events not yet fanned out. Returns how many events it took. */
  async fanOut(batch: number): Promise<number> {
    const [row] = await this.db.query<{ n: string }>(
      `WITH ev AS (
         SELECT id, type, created_at FROM events WHERE NOT fanned_out ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED),
       deliveries AS (
         INSERT INTO webhook_deliveries (endpoint_id, event_id, event_created_at)
         SELECT w.id, ev.id, ev.created_at FROM ev JOIN webhook_endpoints w
             ON (w.events @> ARRAY[ev.type] OR w.events @> ARRAY['*']) AND w.created_at <= ev.created_at
          WHERE ev.type <> 'webhook.test'
         ON CONFLICT DO NOTHING RETURNING 1),
       done AS (UPDATE events SET fanned_out = true WHERE (id, created_at) IN (SELECT id, created_at FROM ev) RETURNING 1)
       SELECT (SELECT count(*) FROM done) AS n, (SELECT count(*) FROM deliveries) AS d`,
      [batch],
    );
    return Number(row.n);
  }

  /** Leases up to `max` due deliveries, at most concurrencyPerEndpoint in flight per endpoint across instances. */
  async claim(max: number, onlyDelivery?: string): Promise<Claimed[]> {
    return this.db.transaction(async (tx) => {
      // Endpoints first: an instance claiming for an endpoint holds its row, so the in-flight count it reads
      // next (a new statement, a new snapshot) cannot change under it. Others skip the endpoint this round.
      const endpoints = await this.db.query<{ id: string }>(
        `SELECT e.id FROM webhook_endpoints e
          WHERE (e.enabled OR $1::bigint IS NOT NULL)
            AND EXISTS (SELECT 1 FROM webhook_deliveries d
                         WHERE d.endpoint_id = e.id AND d.status IN ('pending', 'delivering') AND d.next_attempt_at <= now()
                           AND ($1::bigint IS NULL OR d.id = $1::bigint))
          ORDER BY e.id
            FOR UPDATE SKIP LOCKED`,
        [onlyDelivery ?? null],
        tx,
      );
      if (endpoints.length === 0) return [];
      return this.db.query<Claimed>(
        `WITH picked AS (
           SELECT d.id FROM unnest($1::text[]) AS ep(id)
           CROSS JOIN LATERAL (
             SELECT id FROM webhook_deliveries
              WHERE endpoint_id = ep.id AND status IN ('pending', 'delivering') AND next_attempt_at <= now()
                AND ($4::bigint IS NULL OR id = $4::bigint)
              ORDER BY next_attempt_at, id
              LIMIT greatest(0, $2 - (SELECT count(*) FROM webhook_deliveries
                                       WHERE endpoint_id = ep.id AND status = 'delivering' AND next_attempt_at > now()))
           ) d
           LIMIT $3)
         UPDATE webhook_deliveries w
            SET status = 'delivering', attempts = w.attempts + 1, next_attempt_at = now() + make_interval(secs => $5::double precision)
           FROM picked, webhook_endpoints e, events ev
          WHERE w.id = picked.id AND e.id = w.endpoint_id AND ev.id = w.event_id AND ev.created_at = w.event_created_at
        RETURNING w.id, w.endpoint_id, w.event_id, w.attempts, w.created_at, e.url, e.secret_encrypted,
                  w.delivered_at IS NOT NULL AS was_delivered,
                  ev.type AS ev_type, ev.created_at AS ev_created_at, ev.user_id AS ev_user_id, ev.org_id AS ev_org_id, ev.data AS ev_data`,
        [endpoints.map((e) => e.id), onlyDelivery ? 1 : this.options.concurrencyPerEndpoint, max, onlyDelivery ?? null, this.leaseMs / 1000],
        tx,
      );
    });
  }

  /** Sends one delivery now (POST /api/webhooks/:id/test), whether or not its endpoint is enabled. */
  async deliverNow(deliveryId: string): Promise<boolean> {
    const [claimed] = await this.claim(1, deliveryId);
    if (!claimed) return false;
    await this.track(this.deliver(claimed));
    return true;
  }

  private track(work: Promise<void>): Promise<void> {
    const tracked = work.finally(() => this.inFlight.delete(tracked));
    this.inFlight.add(tracked);
    return tracked;
  }

  private async deliver(delivery: Claimed): Promise<void> {
    try {
      const event: EventRow = {
        id: delivery.event_id,
        type: delivery.ev_type,
        created_at: delivery.ev_created_at,
        user_id: delivery.ev_user_id,
        org_id: delivery.ev_org_id,
        data: delivery.ev_data,
      };
      const body = JSON.stringify(toEventJson(event));
      const result = await this.send(delivery, `evt_${event.id}`, body);
      await this.record(delivery, result, event.created_at);
    } catch (error) {
      // Recording failed (database away): the lease runs out and the delivery is retried.
      this.logger?.warn({ err: error, deliveryId: delivery.id }, 'webhook delivery could not be recorded; it will be retried');
    }
  }

  /** POSTs the body, signed, to the endpoint. 2xx within WEBHOOK_TIMEOUT_MS is success; redirects are not followed. */
  send(delivery: Pick<Claimed, 'url' | 'secret_encrypted'>, messageId: string, body: string): Promise<AttemptResult> {
    const started = process.hrtime.bigint();
    const elapsed = () => Number((process.hrtime.bigint() - started) / 1_000_000n);
    return new Promise<AttemptResult>((resolve) => {
      let settled = false;
      const finish = (result: Omit<AttemptResult, 'durationMs'>) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve({ ...result, durationMs: elapsed() });
      };
      let signature: string;
      let signedAt: Date;
      let url: URL;
      try {
        url = new URL(delivery.url);
        const host = url.hostname.replace(/^\[|\]$/g, '');
        if (!this.options.allowPrivate && isIP(host) && !isPublicAddress(host)) {
          return finish({ success: false, statusCode: null, error: `refused: ${host} is a private or loopback address`, outcome: 'network_error' });
        }
        if (!this.options.secretKey) throw new Error('WEBHOOK_SECRET_KEY is not set');
        // One instant for the signature and the header: two clock reads can straddle a second boundary, and the
        // receiver would then reject a correctly signed delivery.
        signedAt = new Date();
        signature = new Webhook(decryptSecret(delivery.secret_encrypted, this.options.secretKey)).sign(messageId, signedAt, body);
      } catch (error) {
        return finish({ success: false, statusCode: null, error: `cannot sign or address the request: ${(error as Error).message}`, outcome: 'network_error' });
      }
      const transport = url.protocol === 'https:' ? https : http;
      const request = transport.request(url, {
        method: 'POST',
        agent: url.protocol === 'https:' ? this.httpsAgent : this.httpAgent,
        // Host names are resolved through a lookup that refuses private and loopback addresses.
        lookup: this.options.allowPrivate ? undefined : publicOnlyLookup,
        headers: {
          'content-type': 'application/json',
          'user-agent': 'accounting-service-webhooks/1',
          'webhook-id': messageId,
          'webhook-timestamp': String(Math.floor(signedAt.getTime() / 1000)),
          'webhook-signature': signature,
        },
      });
      const timer = setTimeout(() => {
        finish({ success: false, statusCode: null, error: `no 2xx response within ${this.options.timeoutMs} ms`, outcome: 'timeout' });
        request.destroy();
      }, this.options.timeoutMs);
      request.on('response', (response) => {
        const status = response.statusCode ?? 0;
        let read = 0;
        response.on('data', (chunk: Buffer) => {
          read += chunk.length;
          if (read > MAX_RESPONSE_BYTES) response.destroy();
        });
        const done = () =>
          status >= 200 && status < 300
            ? finish({ success: true, statusCode: status, error: null, outcome: 'success' })
            : finish({
                success: false,
                statusCode: status,
                error: status >= 300 && status < 400 ? `redirect (${status}) not followed` : `HTTP ${status}`,
                outcome: 'http_error',
              });
        response.on('end', done);
        response.on('close', done);
        response.on('error', done);
      });
      request.on('error', (error) => finish({ success: false, statusCode: null, error: error.message, outcome: 'network_error' }));
      request.end(body);
    });
  }

  /** Backoff before attempt n+1 after n failed attempts: exponential from WEBHOOK_RETRY_BASE_MS, with jitter. */
  backoffMs(attempts: number): number {
    const ceiling = Math.min(MAX_BACKOFF_MS, this.options.retryBaseMs * 2 ** Math.min(attempts - 1, 30));
    return Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
  }

  private async record(delivery: Claimed, result: AttemptResult, eventCreatedAt: Date): Promise<void> {
    const retryMs = result.success ? 0 : this.backoffMs(delivery.attempts);
    const giveUp = !result.success && delivery.created_at.getTime() + this.options.retryHours * 3_600_000 < Date.now() + retryMs;
    const disabled = result.success ? await this.recordSuccess(delivery, result) : await this.recordFailure(delivery, result, giveUp, retryMs);
    this.metrics.webhookDeliveries.inc({ outcome: result.outcome });
    if (giveUp) this.metrics.webhookDeliveries.inc({ outcome: 'gave_up' });
    if (result.success && !delivery.was_delivered) this.metrics.webhookLag.observe((Date.now() - eventCreatedAt.getTime()) / 1000);
    if (disabled) this.logger?.warn({ webhookId: delivery.endpoint_id }, 'webhook endpoint disabled after repeated failures');
  }

  /** A success in one statement (the hot case): the delivery, its attempt, the endpoint's failure run reset. */
  private async recordSuccess(delivery: Claimed, result: AttemptResult): Promise<boolean> {
    await this.db.query(
      `WITH d AS (
         UPDATE webhook_deliveries SET status = 'succeeded', delivered_at = now(), last_status_code = $3, last_error = NULL
          WHERE id = $1 AND attempts = $2 AND status = 'delivering'
         RETURNING id, endpoint_id),
       a AS (
         INSERT INTO webhook_attempts (delivery_id, attempted_at, status_code, duration_ms, error, success)
         SELECT id, now() - make_interval(secs => $4::double precision), $3, $5, NULL, true FROM d RETURNING 1),
       e AS (
         UPDATE webhook_endpoints SET consecutive_failures = 0
          WHERE id IN (SELECT endpoint_id FROM d) AND consecutive_failures <> 0 RETURNING 1)
       SELECT (SELECT count(*) FROM a) AS attempts, (SELECT count(*) FROM e) AS endpoints`,
      [delivery.id, delivery.attempts, result.statusCode, result.durationMs / 1000, result.durationMs],
    );
    return false;
  }

  /**
   * A failure: the attempt, the next try (or `failed` past WEBHOOK_RETRY_HOURS), and the endpoint's run of
   * failures, which past WEBHOOK_DISABLE_AFTER_FAILURES disables it. Returns whether it disabled it.
   */
  private async recordFailure(delivery: Claimed, result: AttemptResult, giveUp: boolean, retryMs: number): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      // Only the holder of this lease (same attempt number) may record; a late, superseded send records nothing.
      const updated = await this.db.query<{ id: string }>(
        `UPDATE webhook_deliveries
            SET status = $3, last_status_code = $4, last_error = $5,
                next_attempt_at = CASE WHEN $3 = 'pending' THEN now() + make_interval(secs => $6::double precision) ELSE next_attempt_at END
          WHERE id = $1 AND attempts = $2 AND status = 'delivering'
        RETURNING id`,
        [delivery.id, delivery.attempts, giveUp ? 'failed' : 'pending', result.statusCode, result.error, retryMs / 1000],
        tx,
      );
      if (updated.length === 0) return false;
      await this.db.query(
        `INSERT INTO webhook_attempts (delivery_id, attempted_at, status_code, duration_ms, error, success)
         VALUES ($1, now() - make_interval(secs => $2::double precision), $3, $4, $5, $6) RETURNING id`,
        [delivery.id, result.durationMs / 1000, result.statusCode, result.durationMs, result.error, result.success],
        tx,
      );
      const [endpoint] = await this.db.query<{ consecutive_failures: number; enabled: boolean; url: string }>(
        `UPDATE webhook_endpoints SET consecutive_failures = consecutive_failures + 1 WHERE id = $1
         RETURNING consecutive_failures, enabled, url`,
        [delivery.endpoint_id],
        tx,
      );
      const limit = this.options.disableAfterFailures;
      if (!endpoint || !endpoint.enabled || limit === 0 || endpoint.consecutive_failures < limit) return false;
      const reason = `disabled after ${endpoint.consecutive_failures} failed attempts in a row (last: ${result.error})`;
      await this.db.query(
        `UPDATE webhook_endpoints SET enabled = false, disabled_reason = $2, updated_at = now() WHERE id = $1 RETURNING id`,
        [delivery.endpoint_id, reason],
        tx,
      );
      // The event saying so, written with the change (it reaches the other subscribed endpoints).
      await ledgerOf(this.db).emitEvent(
        {
          type: 'webhook.disabled',
          userId: null,
          data: { webhookId: delivery.endpoint_id, url: endpoint.url, consecutiveFailures: endpoint.consecutive_failures, reason },
        },
        tx,
      );
      return true;
    });
  }
}
