import request from 'supertest';
import type { TestContext } from '../support/context';
import { fromDb, type Micro } from '../../src/lib/money';

/** Grants through the API as a supervisor/admin; returns the response. */
export function allocate(ctx: TestContext, auth: string, body: Record<string, unknown>, key?: string) {
  const req = request(ctx.app).post('/api/credits/allocate').set('Authorization', auth);
  if (key !== undefined) req.set('Idempotency-Key', key);
  return req.send(body);
}

export interface LotState {
  id: string;
  total: Micro;
  remaining: Micro;
}

/** The user's lots in id order, straight from the table. */
export async function lotsOf(ctx: TestContext, userId: string): Promise<LotState[]> {
  const rows = await ctx.db.query<{ id: string; total_credits: string; remaining_credits: string }>(
    `SELECT a.id::text AS id, total_credits, remaining_credits FROM credit_allocations a WHERE user_id = $1 ORDER BY a.id`,
    [userId],
  );
  return rows.map((r) => ({ id: r.id, total: fromDb(r.total_credits), remaining: fromDb(r.remaining_credits) }));
}

/** Discrepancies found by the reconcile check (through the service; the HTTP route is tested separately). */
export async function discrepancies(ctx: TestContext) {
  return (await ctx.services.credits.reconcile()).discrepancies;
}

/**
 * Starts a streaming session holding `credits` for the user, as the sessions service would: session row,
 * then CreditService.holdCredits in the same transaction (throws INSUFFICIENT_CREDITS and rolls back).
 */
export async function holdForSession(ctx: TestContext, userId: string, sessionId: string, credits: Micro) {
  return ctx.db.transaction(async (tx) => {
    await ctx.db.query(
      `INSERT INTO streaming_sessions (id, user_id, model_id, price_version, status, estimated_credits, allocated_credits,
                                       request_hash, expires_at)
       VALUES ($1, $2, 'gpt-4o', 1, 'active', $3, $3, 'test', now() + interval '15 minutes') RETURNING 1`,
      [sessionId, userId, credits.toString()],
      tx,
    );
    return ctx.services.credits.holdCredits(userId, credits, sessionId, 'test', tx);
  });
}

/**
 * Resolves a session as the sessions service does: captures `capture` from its legs (in leg order),
 * releases the rest to the same lots — into an expired lot as release + expire — and ends the session.
 */
export async function resolveSession(ctx: TestContext, sessionId: string, capture: Micro, status = 'completed') {
  await ctx.db.transaction(async (tx) => {
    const [session] = await ctx.db.query<{ user_id: string }>(
      `SELECT u.id AS user_id FROM user_accounts u JOIN streaming_sessions s ON s.user_id = u.id WHERE s.id = $1 FOR UPDATE OF u`,
      [sessionId],
      tx,
    );
    const legs = await ctx.db.query<{ allocation_id: string; held_credits: string; expired: boolean }>(
      `SELECT h.allocation_id::text, h.held_credits, coalesce(a.expires_at <= now(), false) AS expired
         FROM session_holds h JOIN credit_allocations a ON a.id = h.allocation_id
        WHERE h.session_id = $1
        ORDER BY a.expires_at NULLS LAST, a.id
          FOR UPDATE OF a, h`,
      [sessionId],
      tx,
    );
    let toCapture = capture;
    for (const leg of legs) {
      const held = fromDb(leg.held_credits);
      const captured = toCapture < held ? toCapture : held;
      const released = held - captured;
      toCapture -= captured;
      const entry = (type: string, amount: Micro) =>
        ctx.db.query(
          `INSERT INTO credit_transactions (user_id, type, amount, allocation_id, session_id, actor_id)
           VALUES ($1, $2, $3, $4, $5, 'test') RETURNING 1`,
          [session.user_id, type, amount.toString(), leg.allocation_id, sessionId],
          tx,
        );
      if (captured > 0n) await entry('capture', captured);
      if (released > 0n) {
        await entry('release', released);
        if (leg.expired) await entry('expire', released);
        else
          await ctx.db.query(`UPDATE credit_allocations SET remaining_credits = remaining_credits + $2 WHERE id = $1 RETURNING 1`, [
            leg.allocation_id,
            released.toString(),
          ], tx);
      }
      await ctx.db.query(
        `UPDATE session_holds SET captured_credits = $3, released_credits = $4 WHERE session_id = $1 AND allocation_id = $2 RETURNING 1`,
        [sessionId, leg.allocation_id, captured.toString(), released.toString()],
        tx,
      );
    }
    // An ended session carries its cost (CHECK streaming_sessions_ended_has_cost).
    await ctx.db.query(`UPDATE streaming_sessions SET status = $2, ended_at = now(), used_credits = $3 WHERE id = $1 RETURNING 1`, [
      sessionId,
      status,
      capture.toString(),
    ], tx);
  });
}
