/**
 * A small typed client for the accounting service, for backend services that wrap model calls:
 *
 *   const accounting = new AccountingClient({ baseUrl, token: () => tokenFor(user) });
 *   const result = await accounting.withStreamingSession({ modelId, estimatedInputTokens, estimatedOutputTokens },
 *     async (session) => { ...stream the model call...; return { actualInputTokens, actualOutputTokens }; });
 *
 * Request and response types come from client/schema.d.ts, generated from the service's OpenAPI document
 * (`npm run client:types`; a test fails when it is stale). Every money-moving call carries a stable
 * Idempotency-Key (and initialize a client-chosen sessionId), so retries after network errors, 503,
 * 429 (honouring Retry-After) and 409 IDEMPOTENCY_IN_PROGRESS can never move credits twice.
 */
import { Webhook } from 'standardwebhooks';
import type { components, paths } from './schema';

export type Schemas = components['schemas'];
export type StreamingSession = Schemas['StreamingSession'];
export type SettledStreamingSession = Schemas['SettledStreamingSession'];
export type InitializeSessionRequest = Schemas['InitializeSessionRequest'];
export type FinalizeSessionRequest = Schemas['FinalizeSessionRequest'];
export type AbortSessionRequest = Schemas['AbortSessionRequest'];
export type ExtendSessionRequest = Schemas['ExtendSessionRequest'];

/** How a heartbeat keeps a session alive while a stream runs. */
export interface HeartbeatOptions {
  /** Time between extends (default 60 s). Keep it well under ttlSeconds. */
  intervalMs?: number;
  /** Each beat sets expiresAt to now + ttlSeconds (default 300). */
  ttlSeconds?: number;
  /** Each beat also grows the hold by this many output tokens (or credits), for streams longer than estimated. */
  additionalOutputTokens?: number;
  additionalCredits?: number;
  /** Stop after this many beats (default 1,000): a forgotten heartbeat cannot run forever. */
  maxBeats?: number;
  /** Called after each successful beat with the session as extended. */
  onBeat?: (session: StreamingSession) => void;
  /** Called when a beat fails; a 402 or an ended session stops the heartbeat, other errors are retried next beat. */
  onError?: (error: unknown) => void;
}

export interface Heartbeat {
  /** Stops beating and waits for a beat in flight. */
  stop(): Promise<void>;
}
export type ApiError = Schemas['Error']['error'];
/** An outbox event: the body of every webhook and an item of GET /api/events (docs/events.md). */
export type AccountingEvent = Schemas['Event'];

type Method = 'get' | 'post' | 'put' | 'patch' | 'delete';
/** Paths that have an operation for `M`. */
export type PathsWith<M extends Method> = { [P in keyof paths]: [NonNullable<paths[P][M]>] extends [never] ? never : P }[keyof paths];
type Operation<P extends keyof paths, M extends Method> = NonNullable<paths[P][M]>;
type JsonOf<T> = T extends { content: { 'application/json': infer J } } ? J : T extends { content: Record<string, infer C> } ? C : void;
export type BodyOf<P extends keyof paths, M extends Method> = Operation<P, M> extends { requestBody: infer B } ? JsonOf<B> : never;
export type QueryOf<P extends keyof paths, M extends Method> = Operation<P, M> extends { parameters: { query?: infer Q } } ? Q : never;
export type ParamsOf<P extends keyof paths, M extends Method> = Operation<P, M> extends { parameters: { path?: infer Q } } ? Q : never;
/** The JSON of the operation's 2xx responses. */
export type ResultOf<P extends keyof paths, M extends Method> = Operation<P, M> extends { responses: infer R }
  ? { [S in keyof R]: S extends 200 | 201 | 202 ? JsonOf<R[S]> : never }[keyof R]
  : never;

export interface RetryPolicy {
  /** Attempts in all, the first included (default 5). */
  attempts: number;
  /** First backoff; doubles per attempt with full jitter (default 100 ms). */
  baseDelayMs: number;
  /** Longest wait between attempts, Retry-After included (default 10 s). */
  maxDelayMs: number;
}

export interface AccountingClientOptions {
  /** e.g. http://localhost:3000 */
  baseUrl: string;
  /** The caller's JWT, or a function returning it (called per request, so it may refresh). */
  token?: string | (() => string | Promise<string>);
  retry?: Partial<RetryPolicy>;
  /** Per-attempt timeout (default 10 s); a timed-out attempt is retried like a network error. */
  timeoutMs?: number;
  /** Injected fetch (tests, proxies); defaults to the global fetch of Node 18+. */
  fetch?: typeof fetch;
  /** Called before each retry, e.g. for logging. */
  onRetry?: (info: { attempt: number; delayMs: number; reason: string; method: string; path: string }) => void;
}

export interface CallOptions<P extends keyof paths, M extends Method> {
  body?: BodyOf<P, M>;
  query?: QueryOf<P, M>;
  params?: ParamsOf<P, M>;
  /** Sent as Idempotency-Key and reused by every retry of this call. */
  idempotencyKey?: string;
}

/** A response the service refused, in its error format. */
export class AccountingError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: Record<string, unknown> | undefined,
    readonly requestId: string | undefined,
  ) {
    super(`${status} ${code}: ${message}`);
    this.name = 'AccountingError';
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A random UUID v4 from the platform's Web Crypto (Node 19+ and browsers), so the client also runs in the
 * admin console. randomUUID exists only in secure contexts; getRandomValues everywhere.
 */
export function randomId(): string {
  const webCrypto = globalThis.crypto;
  if (typeof webCrypto.randomUUID === 'function') return webCrypto.randomUUID();
  const bytes = webCrypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export class AccountingClient {
  private readonly retry: RetryPolicy;
  private readonly fetchImpl: typeof fetch;

  constructor(private readonly options: AccountingClientOptions) {
    this.retry = { attempts: 5, baseDelayMs: 100, maxDelayMs: 10_000, ...options.retry };
    // Wrapped: a browser's fetch throws "Illegal invocation" when called as a method of another object.
    this.fetchImpl = options.fetch ?? ((input, init) => fetch(input, init));
  }

  /** The same client acting for another caller (backend services act for many users). */
  withToken(token: AccountingClientOptions['token']): AccountingClient {
    return new AccountingClient({ ...this.options, token });
  }

  /** Any operation of the API, typed from the OpenAPI document. */
  async call<M extends Method, P extends PathsWith<M>>(method: M, path: P, options: CallOptions<P, M> = {}): Promise<ResultOf<P, M>> {
    const url = this.urlOf(path, options.params as Record<string, string> | undefined, options.query as Record<string, unknown> | undefined);
    const headers: Record<string, string> = { Accept: 'application/json' };
    if (options.body !== undefined) headers['Content-Type'] = 'application/json';
    if (options.idempotencyKey) headers['Idempotency-Key'] = options.idempotencyKey;
    const body = options.body === undefined ? undefined : JSON.stringify(options.body);

    for (let attempt = 1; ; attempt++) {
      const token = typeof this.options.token === 'function' ? await this.options.token() : this.options.token;
      let response: Response;
      try {
        response = await this.fetchImpl(url, {
          method: method.toUpperCase(),
          headers: token ? { ...headers, Authorization: `Bearer ${token}` } : headers,
          body,
          signal: AbortSignal.timeout(this.options.timeoutMs ?? 10_000),
        });
      } catch (error) {
        // Network error or timeout: the request may or may not have been applied; the same key makes the retry safe.
        if (attempt >= this.retry.attempts) throw error;
        await this.backoff(attempt, undefined, `network: ${(error as Error).message}`, method, path);
        continue;
      }
      const text = await response.text();
      const json = text ? (JSON.parse(text) as unknown) : undefined;
      if (response.ok) return json as ResultOf<P, M>;

      const apiError = (json as { error?: ApiError } | undefined)?.error;
      const code = apiError?.code ?? 'HTTP_' + response.status;
      const retryable =
        response.status === 503 || response.status === 429 || (response.status === 409 && code === 'IDEMPOTENCY_IN_PROGRESS') || response.status === 502;
      if (!retryable || attempt >= this.retry.attempts) {
        throw new AccountingError(response.status, code, apiError?.message ?? response.statusText, apiError?.details, apiError?.requestId);
      }
      await this.backoff(attempt, response.headers.get('retry-after'), `${response.status} ${code}`, method, path);
    }
  }

  // ---------- streaming sessions: initialize -> stream -> finalize | abort ----------

  /**
   * Holds the estimate. A sessionId is chosen here when none is given, so a retry (or a second call
   * with the same sessionId and body) returns the same session instead of holding twice: the sessionId is
   * the session's idempotency id. The Idempotency-Key is this call's own (its retries reuse it): the
   * service keeps a refusal under a key, so a key made from the sessionId alone would answer a later call,
   * made after a top-up, with the first call's 402.
   */
  initialize(body: InitializeSessionRequest): Promise<StreamingSession> {
    const sessionId = body.sessionId ?? randomId();
    return this.call('post', '/api/streaming-sessions/initialize', {
      body: { ...body, sessionId },
      idempotencyKey: `initialize:${sessionId}:${randomId()}`,
    });
  }

  /** Captures the real cost and releases the rest; safe to repeat (same result). Key: this call's own, as initialize's. */
  finalize(body: FinalizeSessionRequest): Promise<SettledStreamingSession> {
    return this.call('post', '/api/streaming-sessions/finalize', { body, idempotencyKey: `finalize:${body.sessionId}:${randomId()}` });
  }

  /** Charges what was streamed (if given) and releases the rest; safe to repeat. Key: this call's own, as initialize's. */
  abort(body: AbortSessionRequest): Promise<SettledStreamingSession> {
    return this.call('post', '/api/streaming-sessions/abort', { body, idempotencyKey: `abort:${body.sessionId}:${randomId()}` });
  }

  /**
   * Gives an active session a new TTL and/or a larger hold. Each call is its own operation: pass the same
   * idempotencyKey to retry one safely (the default is fresh per call and reused by this call's retries).
   */
  extend(body: ExtendSessionRequest, idempotencyKey: string = `extend:${body.sessionId}:${crypto.randomUUID()}`): Promise<StreamingSession> {
    return this.call('post', '/api/streaming-sessions/extend', { body, idempotencyKey });
  }

  /**
   * Extends a session every `intervalMs` while a long stream or agent runs, instead of holding a huge
   * estimate up front. Stops on stop(), after maxBeats, or when the service says the session cannot be
   * extended (402, ended, unknown).
   */
  heartbeat(sessionId: string, options: HeartbeatOptions = {}): Heartbeat {
    const intervalMs = options.intervalMs ?? 60_000;
    const maxBeats = options.maxBeats ?? 1_000;
    let beats = 0;
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let inFlight: Promise<void> = Promise.resolve();
    const beat = async () => {
      try {
        const session = await this.extend({
          sessionId,
          ttlSeconds: options.ttlSeconds ?? 300,
          ...(options.additionalOutputTokens !== undefined ? { additionalOutputTokens: options.additionalOutputTokens } : {}),
          ...(options.additionalCredits !== undefined ? { additionalCredits: options.additionalCredits } : {}),
        });
        options.onBeat?.(session);
      } catch (error) {
        options.onError?.(error);
        if (error instanceof AccountingError && [402, 404, 409].includes(error.status)) stopped = true;
      }
    };
    const schedule = () => {
      if (stopped || beats >= maxBeats) return;
      timer = setTimeout(() => {
        beats++;
        inFlight = beat().then(schedule);
      }, intervalMs);
    };
    schedule();
    return {
      stop: async () => {
        stopped = true;
        if (timer) clearTimeout(timer);
        await inFlight;
      },
    };
  }

  /**
   * The whole flow around one streamed model call: initialize, run `stream`, then finalize with the
   * usage it returns. If `stream` throws, the session is aborted, charging the usage reported so far
   * through `session.report(...)`, and the error is rethrown. With `heartbeat`, the session is extended
   * while `stream` runs (see heartbeat()).
   */
  async withStreamingSession(
    request: InitializeSessionRequest,
    stream: (session: StreamingSession & { report(usage: { actualInputTokens?: number; actualOutputTokens?: number }): void }) => Promise<{
      actualInputTokens: number;
      actualOutputTokens: number;
      cachedInputTokens?: number;
      cacheWriteTokens?: number;
      cacheWrite1hTokens?: number;
      reasoningTokens?: number;
    }>,
    options: { heartbeat?: HeartbeatOptions } = {},
  ): Promise<{ session: StreamingSession; result: SettledStreamingSession }> {
    const session = await this.initialize(request);
    let reported: { actualInputTokens?: number; actualOutputTokens?: number } = {};
    let usage: Awaited<ReturnType<typeof stream>>;
    const heartbeat = options.heartbeat ? this.heartbeat(session.sessionId, options.heartbeat) : null;
    try {
      usage = await stream({ ...session, report: (u) => (reported = { ...reported, ...u }) });
    } catch (error) {
      await heartbeat?.stop();
      await this.abort({ sessionId: session.sessionId, ...reported, reason: String((error as Error)?.message ?? error).slice(0, 200) });
      throw error;
    }
    await heartbeat?.stop();
    const result = await this.finalize({ sessionId: session.sessionId, ...usage });
    return { session, result };
  }

  // ---------- a few everyday calls ----------

  balance() {
    return this.call('get', '/api/credits/balance');
  }

  /** Supervisor/admin: grants credits. Pass an idempotencyKey of your own to make retries of your job safe. */
  allocate(body: BodyOf<'/api/credits/allocate', 'post'>, idempotencyKey: string = randomId()) {
    return this.call('post', '/api/credits/allocate', { body, idempotencyKey });
  }

  // ---------- internals ----------

  private urlOf(path: string, params?: Record<string, string>, query?: Record<string, unknown>): string {
    const filled = path.replace(/\{([^}]+)\}/g, (_, name: string) => {
      const value = params?.[name];
      if (value === undefined) throw new Error(`missing path parameter ${name}`);
      return encodeURIComponent(value);
    });
    const url = new URL(filled, this.options.baseUrl.replace(/\/?$/, '/'));
    for (const [key, value] of Object.entries(query ?? {})) if (value !== undefined) url.searchParams.set(key, String(value));
    return url.toString();
  }

  private async backoff(attempt: number, retryAfter: string | null | undefined, reason: string, method: string, path: string): Promise<void> {
    const exponential = Math.min(this.retry.maxDelayMs, this.retry.baseDelayMs * 2 ** (attempt - 1));
    let delayMs = Math.round(exponential / 2 + (Math.random() * exponential) / 2);
    const seconds = retryAfter ? Number(retryAfter) : NaN;
    if (Number.isFinite(seconds) && seconds >= 0) delayMs = Math.min(this.retry.maxDelayMs, Math.max(delayMs, seconds * 1000));
    this.options.onRetry?.({ attempt, delayMs, reason, method, path });
    await sleep(delayMs);
  }
}

/**
 * Verifies a webhook request from the accounting service (Standard Webhooks: `webhook-id`,
 * `webhook-timestamp`, `webhook-signature`, checked with the `standardwebhooks` package, timestamps more
 * than 5 minutes off refused) and returns the event. `rawBody` must be the bytes as received, before any
 * JSON parsing; `secret` is the endpoint's `whsec_...` secret. Throws WebhookVerificationError when the
 * request was not signed with that secret. The event's `id` equals `webhook-id`: deliveries are at least
 * once, so deduplicate on it.
 */
export function verifyWebhook(secret: string, rawBody: string | Parameters<Webhook['verify']>[0], headers: Record<string, string | string[] | undefined>): AccountingEvent {
  const one = (name: string) => {
    const value = headers[name] ?? headers[name.toLowerCase()];
    return Array.isArray(value) ? value[0] : (value ?? '');
  };
  const signed = { 'webhook-id': one('webhook-id'), 'webhook-timestamp': one('webhook-timestamp'), 'webhook-signature': one('webhook-signature') };
  return new Webhook(secret).verify(rawBody, signed) as AccountingEvent;
}
export { WebhookVerificationError } from 'standardwebhooks';
