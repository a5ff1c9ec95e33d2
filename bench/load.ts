/**
 * The load generator, forked by run.ts so it never shares a CPU thread with what it measures.
 * It pre-signs one token per seeded user, then runs one autocannon scenario per 'run' message and
 * answers with a summary. It keeps the sessions S1 opened so S2 can finalize them.
 */
import crypto from 'node:crypto';
import autocannon from 'autocannon';
import jwt from 'jsonwebtoken';
import { Client } from 'pg';
import {
  ACTUAL_INPUT_TOKENS,
  ACTUAL_OUTPUT_TOKENS,
  BENCH_JWT_SECRET,
  ESTIMATED_INPUT_TOKENS,
  ESTIMATED_OUTPUT_TOKENS,
  HOT_USER,
  MODEL_ID,
  USER_COUNT,
  userId,
} from './constants';
import type { LoadRequest, LoadResponse, ScenarioResult } from './protocol';
import { SESSION_OPEN, loadPrices, sessionOpenValues } from './session-open';

const key = crypto.createSecretKey(Buffer.from(BENCH_JWT_SECRET, 'utf8'));
// BENCH_TOKEN_ORG=acme: every token names that org (a caller whose token carries an org is mirrored at every
// request: docs/budgets.md), to measure what such callers pay.
const orgClaim = process.env.BENCH_TOKEN_ORG ? { org: process.env.BENCH_TOKEN_ORG } : {};
const sign = (sub: string) => `Bearer ${jwt.sign({ sub, role: 'user', ...orgClaim }, key, { algorithm: 'HS256', expiresIn: '6h' })}`;
const userCount = Number(process.env.BENCH_USER_COUNT ?? USER_COUNT);
const users = Array.from({ length: userCount }, (_, i) => ({ id: userId(i + 1), auth: sign(userId(i + 1)) }));
const hotAuth = sign(HOT_USER);
const randomUser = () => users[(Math.random() * users.length) | 0];

const runId = crypto.randomBytes(3).toString('hex');
let sequence = 0;
const nextSessionId = (prefix: string) => `${prefix}-${runId}-${(sequence++).toString(36)}`;

/** Sessions S1 opened (and got 201 for), waiting for S2 to finalize them. */
const opened: { sessionId: string; auth: string }[] = [];

const JSON_HEADERS = { 'content-type': 'application/json' };
// BENCH_TOKEN_KINDS=all: every token kind in initialize and finalize (to compare with plain input/output).
const PARTS =
  process.env.BENCH_TOKEN_KINDS === 'all' ? { cachedInputTokens: 300, cacheWriteTokens: 100, cacheWrite1hTokens: 50, reasoningTokens: 200 } : {};
const initializeBody = (sessionId: string) =>
  JSON.stringify({ sessionId, modelId: MODEL_ID, estimatedInputTokens: ESTIMATED_INPUT_TOKENS, estimatedOutputTokens: ESTIMATED_OUTPUT_TOKENS, ...PARTS });
const finalizeBody = (sessionId: string) =>
  JSON.stringify({ sessionId, actualInputTokens: ACTUAL_INPUT_TOKENS, actualOutputTokens: ACTUAL_OUTPUT_TOKENS, ...PARTS });

type Ctx = { sessionId?: string; auth?: string };
type Req = autocannon.Request;

/** One hold for a random user (or the hot one) at `path`, remembering the session in the context. */
function holdRequest(path: string, prefix: string, opts: { hot?: boolean; remember?: boolean } = {}): autocannon.Request {
  return {
    method: 'POST',
    path,
    setupRequest: (req: Req, context: object) => {
      const ctx = context as Ctx;
      ctx.sessionId = nextSessionId(prefix);
      ctx.auth = opts.hot ? hotAuth : randomUser().auth;
      return { ...req, headers: { ...JSON_HEADERS, authorization: ctx.auth }, body: initializeBody(ctx.sessionId) };
    },
    onResponse: (status: number, _body: string, context: object) => {
      const ctx = context as Ctx;
      if (opts.remember && status === 201 && ctx.sessionId && ctx.auth) opened.push({ sessionId: ctx.sessionId, auth: ctx.auth });
    },
  };
}

/** Finalizes the session the previous request of this connection opened (S3, I3, soak). */
const finalizeOwnAt = (path: string): autocannon.Request => ({
  method: 'POST',
  path,
  setupRequest: (req: Req, context: object) => {
    const ctx = context as Ctx;
    if (!ctx.sessionId || !ctx.auth) return undefined as unknown as Req; // restart the flow
    return { ...req, headers: { ...JSON_HEADERS, authorization: ctx.auth }, body: finalizeBody(ctx.sessionId) };
  },
});
const finalizeOwn = finalizeOwnAt('/api/streaming-sessions/finalize');

function getRequest(path: string): autocannon.Request {
  return {
    method: 'GET',
    path,
    setupRequest: (req: Req) => ({ ...req, headers: { authorization: randomUser().auth } }),
  };
}

interface Plan {
  requests: autocannon.Request[];
  maxOverallRequests?: number;
  /** Requests per completed unit of work (an initialize→finalize flow is 2). */
  perFlow?: number;
}

function plan(msg: Extract<LoadRequest, { type: 'run' }>): Plan | string {
  const init = '/api/streaming-sessions/initialize';
  switch (msg.kind) {
    case 'baseline-hold':
      return { requests: [holdRequest('/hold', 'b1')] };
    case 'baseline-initialize':
      return { requests: [holdRequest('/initialize', 'i0')] };
    case 'baseline-flow':
      return { requests: [holdRequest('/initialize', 'i3'), finalizeOwnAt('/finalize')], perFlow: 2 };
    case 'statement-loop':
      return 'not an HTTP scenario';
    case 'initialize':
      opened.length = 0;
      return { requests: [holdRequest(init, 's1', { remember: true })] };
    case 'finalize-opened': {
      if (opened.length < msg.connections) return `S1 opened only ${opened.length} sessions`;
      const queue = opened.splice(0);
      let next = 0;
      return {
        maxOverallRequests: queue.length,
        requests: [
          {
            method: 'POST',
            path: '/api/streaming-sessions/finalize',
            setupRequest: (req: Req) => {
              // Past the end (a reconnect resent one), finalize the last again: a replay, still 200.
              const s = queue[Math.min(next++, queue.length - 1)];
              return { ...req, headers: { ...JSON_HEADERS, authorization: s.auth }, body: finalizeBody(s.sessionId) };
            },
          },
        ],
      };
    }
    case 'flow':
      return { requests: [holdRequest(init, 's3'), finalizeOwn], perFlow: 2 };
    case 'initialize-hot':
      return { requests: [holdRequest(init, 's4', { hot: true })] };
    case 'get':
      return { requests: [getRequest(msg.path ?? '/api/credits/balance')] };
    case 'mixed':
      return { requests: [holdRequest(init, 'mx'), finalizeOwn, getRequest(msg.path ?? '/api/credits/balance')] };
  }
}

/** Everything measured for one scenario id, summed over the rounds it ran in. */
interface Accumulated {
  latencies: number[];
  seconds: number;
  ok: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  errorCodes: Record<string, number>;
}
const accumulated = new Map<string, Accumulated>();

const percentile = (sorted: Float64Array, p: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] : NaN);

function runAutocannon(options: autocannon.Options, onLatency: (ms: number) => void): Promise<autocannon.Result> {
  return new Promise((resolve, reject) => {
    const instance = autocannon(options, (error, result) => (error ? reject(error) : resolve(result)));
    instance.on('response', (_client: unknown, _status: number, _bytes: number, responseTime: number) => onLatency(responseTime));
  });
}

/**
 * P0, the database's ceiling: `connections` plain pg clients (one per pooled connection of the service),
 * each sending the statement initialize sends (bench/session-open.ts, named prepared, autocommit) for a
 * random user, back to back, for `durationSec`. No HTTP, no JSON, no JWT: only the driver and PostgreSQL.
 */
async function runStatementLoop(msg: Extract<LoadRequest, { type: 'run' }>, acc: Accumulated): Promise<number> {
  const clients = await Promise.all(
    Array.from({ length: msg.connections }, async () => {
      const client = new Client({ connectionString: msg.url, application_name: 'bench-p0', options: '-c timezone=UTC' });
      client.on('error', () => undefined);
      await client.connect();
      return client;
    }),
  );
  try {
    const price = (await loadPrices(clients[0])).get(MODEL_ID);
    if (!price) throw new Error(`no price for ${MODEL_ID}`);
    const started = performance.now();
    const deadline = started + msg.durationSec * 1000;
    await Promise.all(
      clients.map(async (client) => {
        while (performance.now() < deadline) {
          const t0 = performance.now();
          try {
            const { rows } = await client.query<{ outcome: string }>({ ...SESSION_OPEN, values: sessionOpenValues(price, nextSessionId('p0'), randomUser().id) });
            acc.latencies.push(performance.now() - t0);
            if (rows[0]?.outcome === 'created') acc.ok++;
            else {
              acc.non2xx++;
              const code = `outcome ${rows[0]?.outcome ?? 'none'}`;
              acc.errorCodes[code] = (acc.errorCodes[code] ?? 0) + 1;
            }
          } catch (error) {
            acc.errors++;
            const code = `error ${(error as { code?: string }).code ?? 'none'}`;
            acc.errorCodes[code] = (acc.errorCodes[code] ?? 0) + 1;
          }
        }
      }),
    );
    return (performance.now() - started) / 1000;
  } finally {
    await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
  }
}

const summaryOf = (acc: Accumulated, perFlow: number): ScenarioResult => {
  const sorted = Float64Array.from(acc.latencies).sort();
  return {
    requests: acc.latencies.length,
    seconds: acc.seconds,
    reqPerSec: acc.latencies.length / acc.seconds,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    max: sorted.length ? sorted[sorted.length - 1] : NaN,
    ok: acc.ok,
    non2xx: acc.non2xx,
    errors: acc.errors,
    timeouts: acc.timeouts,
    errorCodes: acc.errorCodes,
    perFlow,
  };
};

async function run(msg: Extract<LoadRequest, { type: 'run' }>): Promise<ScenarioResult | string> {
  if (msg.kind === 'statement-loop') {
    const acc: Accumulated = accumulated.get(msg.id) ?? { latencies: [], seconds: 0, ok: 0, non2xx: 0, errors: 0, timeouts: 0, errorCodes: {} };
    accumulated.set(msg.id, acc);
    acc.seconds += await runStatementLoop(msg, acc);
    return summaryOf(acc, 1);
  }
  const p = plan(msg);
  if (typeof p === 'string') return p;
  const acc: Accumulated = accumulated.get(msg.id) ?? { latencies: [], seconds: 0, ok: 0, non2xx: 0, errors: 0, timeouts: 0, errorCodes: {} };
  accumulated.set(msg.id, acc);
  // Wrap every request to count error codes from non-2xx bodies.
  const requests = p.requests.map((r) => ({
    ...r,
    onResponse: (status: number, body: string, context: object, headers: Req['headers']) => {
      if (status >= 300) {
        const code = /"code"\s*:\s*"([A-Z_]{1,40})"/.exec(body)?.[1] ?? 'none';
        acc.errorCodes[`${status} ${code}`] = (acc.errorCodes[`${status} ${code}`] ?? 0) + 1;
      }
      if (typeof r.onResponse === 'function') r.onResponse(status, body, context, headers);
    },
  }));
  const started = Date.now();
  const result = await runAutocannon(
    { url: msg.url, connections: msg.connections, duration: msg.durationSec, maxOverallRequests: p.maxOverallRequests, requests, timeout: 10 },
    (ms) => acc.latencies.push(ms),
  );
  acc.seconds += result.duration || (Date.now() - started) / 1000;
  acc.ok += result['2xx'];
  acc.non2xx += result.non2xx;
  acc.errors += result.errors;
  acc.timeouts += result.timeouts;
  return summaryOf(acc, p.perFlow ?? 1);
}

process.on('message', (raw) => {
  const msg = raw as LoadRequest;
  if (msg.type === 'stop') process.exit(0);
  run(msg).then(
    (result) => process.send!(typeof result === 'string' ? ({ type: 'skipped', reason: result } satisfies LoadResponse) : ({ type: 'result', result } satisfies LoadResponse)),
    (error) => process.send!({ type: 'failed', error: error instanceof Error ? error.stack ?? error.message : String(error) } satisfies LoadResponse),
  );
});
// The orchestrator going away (even with SIGKILL) closes the IPC channel: leave with it.
process.on('disconnect', () => process.exit(0));
process.send!({ type: 'ready', users: users.length } satisfies LoadResponse);
