/**
 * The hand-written baselines, one process (they never run at the same time):
 *
 * H0 — `GET /health`: bare Express 5 answering JSON, no middleware at all (the service's /health floor).
 *
 * I0 — `POST /initialize`: the ideal for the service's design. Express + express.json, jsonwebtoken
 * verification (same secret and algorithm, a KeyObject, like the service), a few typeof checks, then the
 * statement the service's initialize sends (bench/session-open.ts: acct_session_open, named prepared, in
 * autocommit) on a `pg` Pool of the same size, and the same 201 body. No validation library, no
 * idempotency header, no logging, no metrics, no security headers.
 *
 * I3 — I0's `POST /initialize`, then `POST /finalize` of the same session: the same few checks, then the
 * statement the service's finalize sends (bench/session-open.ts: acct_session_settle, named prepared, in
 * autocommit; the cost at the bench model's price, as the service computes it) and a small 200 body. What
 * S3's flows would cost with nothing of the service in front of its two statements.
 *
 * B1 — `POST /hold`, the smallest thing that does the hold transaction of
 * POST /api/streaming-sessions/initialize on this stack. Express + jsonwebtoken (same secret and
 * algorithm, a KeyObject like the service) + a `pg` Pool with named prepared statements, one statement
 * per round trip:
 *   BEGIN; lock the user row; lock live lots in consumption order; insert the session;
 *   per lot drawn: conditional decrement, hold leg, ledger row; COMMIT.
 * No validation library, no idempotency table, no logging: what the service adds on top is its cost.
 * Env: DATABASE_URL, PORT, HOST, POOL_MAX, JWT_SECRET.
 */
import crypto from 'node:crypto';
import http from 'node:http';
import express from 'express';
import jwt from 'jsonwebtoken';
import { Pool, type PoolClient } from 'pg';
import { toCredits } from '../src/lib/money';
import { SESSION_OPEN, SESSION_SETTLE, loadPrices, sessionOpenValues, sessionSettleValues, BENCH_MODEL, type Price as OpenPrice } from './session-open';

const env = process.env;
const pool = new Pool({
  connectionString: env.DATABASE_URL,
  max: Number(env.POOL_MAX ?? 10),
  application_name: 'bench-baseline',
  statement_timeout: 10_000,
  lock_timeout: 3_000,
  options: '-c default_transaction_isolation=read\\ committed -c timezone=UTC',
});
pool.on('error', () => undefined);
const key = crypto.createSecretKey(Buffer.from(env.JWT_SECRET ?? '', 'utf8'));

interface Price {
  version: number;
  input: bigint;
  output: bigint;
}
const prices = new Map<string, Price>();

const LOCK_USER = { name: 'b1_lock_user', text: 'SELECT 1 FROM user_accounts WHERE id = $1 FOR UPDATE' };
const LOCK_LOTS = {
  name: 'b1_lock_lots',
  text: `SELECT id, remaining_credits FROM credit_allocations
          WHERE user_id = $1 AND remaining_credits > 0 AND (expires_at IS NULL OR expires_at > now())
          ORDER BY expires_at NULLS LAST, id FOR UPDATE`,
};
const INSERT_SESSION = {
  name: 'b1_insert_session',
  text: `INSERT INTO streaming_sessions (id, user_id, model_id, price_version, status, estimated_input_tokens,
                                         estimated_output_tokens, estimated_credits, allocated_credits,
                                         request_hash, expires_at)
         VALUES ($1, $2, $3, $4, 'active', $5, $6, $7, $7, $8, now() + interval '15 minutes')
         RETURNING expires_at`,
};
const DECREMENT = {
  name: 'b1_decrement',
  text: 'UPDATE credit_allocations SET remaining_credits = remaining_credits - $2 WHERE id = $1 AND remaining_credits >= $2',
};
const INSERT_LEG = {
  name: 'b1_insert_leg',
  text: 'INSERT INTO session_holds (session_id, allocation_id, user_id, held_credits) VALUES ($1, $2, $3, $4)',
};
const INSERT_LEDGER = {
  name: 'b1_insert_ledger',
  text: `INSERT INTO credit_transactions (user_id, type, amount, allocation_id, session_id, actor_id)
         VALUES ($1, 'hold', $2, $3, $4, $1)`,
};

class HttpError extends Error {
  constructor(readonly status: number, readonly code: string) {
    super(code);
  }
}

async function hold(client: PoolClient, userId: string, sessionId: string, modelId: string, inTok: number, outTok: number, hash: string) {
  const price = prices.get(modelId);
  if (!price) throw new HttpError(400, 'UNKNOWN_MODEL');
  const amount = (BigInt(inTok) * price.input + BigInt(outTok) * price.output + 999_999n) / 1_000_000n;
  await client.query('BEGIN');
  try {
    await client.query({ ...LOCK_USER, values: [userId] });
    const lots = await client.query<{ id: string; remaining_credits: string }>({ ...LOCK_LOTS, values: [userId] });
    let available = 0n;
    for (const lot of lots.rows) available += BigInt(lot.remaining_credits);
    if (available < amount) throw new HttpError(402, 'INSUFFICIENT_CREDITS');
    const session = await client.query<{ expires_at: Date }>({
      ...INSERT_SESSION,
      values: [sessionId, userId, modelId, price.version, inTok, outTok, amount.toString(), hash],
    });
    let needed = amount;
    for (const lot of lots.rows) {
      if (needed === 0n) break;
      const remaining = BigInt(lot.remaining_credits);
      const take = remaining < needed ? remaining : needed;
      const updated = await client.query({ ...DECREMENT, values: [lot.id, take.toString()] });
      if (updated.rowCount !== 1) throw new Error('lot changed while locked');
      await client.query({ ...INSERT_LEG, values: [sessionId, lot.id, userId, take.toString()] });
      await client.query({ ...INSERT_LEDGER, values: [userId, take.toString(), lot.id, sessionId] });
      needed -= take;
    }
    await client.query('COMMIT');
    return { amount, expiresAt: session.rows[0].expires_at, priceVersion: price.version };
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}

const app = express();
// H0: before any middleware.
app.get('/health', (_req, res) => {
  res.json({ status: 'ok' });
});
app.use(express.json());
app.get('/ready', (_req, res) => {
  res.json({ ready: true });
});

/** The token's subject, or null (401). */
function subjectOf(authorization: string | undefined): string | null {
  const match = /^Bearer (.+)$/.exec(authorization ?? '');
  try {
    const claims = jwt.verify(match?.[1] ?? '', key, { algorithms: ['HS256'] });
    return typeof claims !== 'string' && typeof claims.sub === 'string' ? claims.sub : null;
  } catch {
    return null;
  }
}

let openPrices = new Map<string, OpenPrice>();
const OPEN_STATUS: Record<string, [number, string?]> = { created: [201], replayed: [200], insufficient: [402, 'INSUFFICIENT_CREDITS'], reused: [409, 'IDEMPOTENCY_KEY_REUSED'] };

// I0: JWT verify + the service's one statement.
app.post('/initialize', async (req, res) => {
  const sub = subjectOf(req.headers.authorization);
  if (sub === null) {
    res.status(401).json({ error: { code: 'UNAUTHENTICATED' } });
    return;
  }
  const { sessionId, modelId, estimatedInputTokens, estimatedOutputTokens } = req.body ?? {};
  const price = typeof modelId === 'string' ? openPrices.get(modelId) : undefined;
  if (typeof sessionId !== 'string' || !price || !Number.isInteger(estimatedInputTokens) || !Number.isInteger(estimatedOutputTokens)) {
    res.status(400).json({ error: { code: 'VALIDATION_ERROR' } });
    return;
  }
  try {
    const { rows } = await pool.query<{ outcome: string; id: string; model_id: string; status: string; estimated_credits: string; allocated_credits: string; price_version: number; expires_at: Date }>({
      ...SESSION_OPEN,
      values: sessionOpenValues(price, sessionId, sub, estimatedInputTokens, estimatedOutputTokens),
    });
    const row = rows[0];
    const [status, code] = OPEN_STATUS[row.outcome] ?? [500, 'INTERNAL'];
    if (code) {
      res.status(status).json({ error: { code } });
      return;
    }
    res.status(status).json({
      sessionId: row.id,
      modelId: row.model_id,
      status: row.status,
      estimatedCredits: toCredits(BigInt(row.estimated_credits)),
      allocatedCredits: toCredits(BigInt(row.allocated_credits)),
      priceVersion: row.price_version,
      expiresAt: row.expires_at.toISOString(),
    });
  } catch {
    res.status(500).json({ error: { code: 'INTERNAL' } });
  }
});
// I3's second request: JWT verify + the service's finalize statement.
app.post('/finalize', async (req, res) => {
  const sub = subjectOf(req.headers.authorization);
  if (sub === null) {
    res.status(401).json({ error: { code: 'UNAUTHENTICATED' } });
    return;
  }
  const { sessionId, actualInputTokens, actualOutputTokens } = req.body ?? {};
  const price = openPrices.get(BENCH_MODEL);
  if (typeof sessionId !== 'string' || !price || !Number.isInteger(actualInputTokens) || !Number.isInteger(actualOutputTokens)) {
    res.status(400).json({ error: { code: 'VALIDATION_ERROR' } });
    return;
  }
  try {
    const { rows } = await pool.query<{ outcome: string; id: string; status: string; used_credits: string; refunded_credits: string }>({
      ...SESSION_SETTLE,
      values: sessionSettleValues(price, sessionId, sub, actualInputTokens, actualOutputTokens),
    });
    const row = rows[0];
    if (row.outcome !== 'settled' && row.outcome !== 'replayed') {
      res.status(row.outcome === 'not_found' ? 404 : 409).json({ error: { code: row.outcome.toUpperCase() } });
      return;
    }
    res.json({ sessionId: row.id, status: row.status, usedCredits: toCredits(BigInt(row.used_credits)), refundedCredits: toCredits(BigInt(row.refunded_credits)) });
  } catch {
    res.status(500).json({ error: { code: 'INTERNAL' } });
  }
});
app.post('/hold', async (req, res) => {
  const match = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
  let sub: string;
  try {
    const claims = jwt.verify(match?.[1] ?? '', key, { algorithms: ['HS256'] });
    if (typeof claims === 'string' || typeof claims.sub !== 'string') throw new Error('no sub');
    sub = claims.sub;
  } catch {
    res.status(401).json({ error: { code: 'UNAUTHENTICATED' } });
    return;
  }
  const { sessionId, modelId, estimatedInputTokens, estimatedOutputTokens } = req.body ?? {};
  if (typeof sessionId !== 'string' || typeof modelId !== 'string' || !Number.isInteger(estimatedInputTokens) || !Number.isInteger(estimatedOutputTokens)) {
    res.status(400).json({ error: { code: 'VALIDATION_ERROR' } });
    return;
  }
  const hash = crypto.createHash('sha256').update(JSON.stringify(req.body)).digest('hex');
  let client: PoolClient | undefined;
  try {
    client = await pool.connect();
    const held = await hold(client, sub, sessionId, modelId, estimatedInputTokens, estimatedOutputTokens, hash);
    res.status(201).json({
      sessionId,
      modelId,
      status: 'active',
      estimatedCredits: toCredits(held.amount),
      allocatedCredits: toCredits(held.amount),
      priceVersion: held.priceVersion,
      expiresAt: held.expiresAt.toISOString(),
    });
  } catch (error) {
    if (error instanceof HttpError) res.status(error.status).json({ error: { code: error.code } });
    else if ((error as { code?: string }).code === '23505') res.status(409).json({ error: { code: 'CONFLICT' } });
    else res.status(500).json({ error: { code: 'INTERNAL' } });
  } finally {
    client?.release();
  }
});

async function main() {
  const { rows } = await pool.query<{ model_id: string; price_version: number; input_price_per_1m: string; output_price_per_1m: string }>(
    `SELECT DISTINCT ON (model_id) model_id, price_version, input_price_per_1m, output_price_per_1m
       FROM model_prices ORDER BY model_id, price_version DESC`,
  );
  for (const r of rows) prices.set(r.model_id, { version: r.price_version, input: BigInt(r.input_price_per_1m), output: BigInt(r.output_price_per_1m) });
  openPrices = await loadPrices(pool);
  const server = http.createServer(app);
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve) => server.listen(Number(env.PORT ?? 0), env.HOST ?? '127.0.0.1', resolve));
  const stop = () => {
    server.close();
    server.closeAllConnections();
    void pool.end().finally(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((error) => {
  console.error('baseline failed to start:', error instanceof Error ? error.message : error);
  process.exit(1);
});
