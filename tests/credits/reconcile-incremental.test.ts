import { Client } from 'pg';
import request from 'supertest';
import { ledgerOf } from '../../src/ledger/ledger';
import { reconcileResponse } from '../../src/schemas/credit.schemas';
import { createTestContext, type TestContext } from '../support/context';
import { count, grantDirect, micro } from '../support/db';
import { userWithRole } from '../support/tokens';
import { chargeUsage, holdForSession } from './helpers';

/**
 * GET /api/admin/reconcile?mode=incremental|full and ?userId= (issue 18): an incremental run checks the users
 * with rows written since the last clean run (the checkpoint), and a difference is found in every mode.
 */
let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext();
});
afterAll(() => ctx.close());

const admin = userWithRole('admin');

function reconcile(query: Record<string, string> = {}) {
  return request(ctx.app).get('/api/admin/reconcile').query(query).set('Authorization', admin.auth);
}

/**
 * Waits until no other transaction of this test's database is running (bounded, 30 s; an autoanalyze, say).
 * A run's checkpoint is the oldest transaction of the database still running at its snapshot, so without
 * this a row written just before a clean run could still count as changed after it (which only makes a run
 * check more, but would make the counts in these tests vary).
 */
async function settle(): Promise<void> {
  const until = Date.now() + 30_000;
  for (;;) {
    const [{ n }] = await ctx.db.query<{ n: string }>(
      `SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND backend_xid IS NOT NULL AND pid <> pg_backend_pid()`,
    );
    if (n === '0') return;
    if (Date.now() > until) throw new Error('another transaction in this database stayed open for 30 s');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function checkpoint(): Promise<{ snapshot_xmin: string; taken_at: Date } | undefined> {
  const [row] = await ctx.db.query<{ snapshot_xmin: string; taken_at: Date }>(`SELECT snapshot_xmin::text, taken_at FROM reconcile_checkpoints`);
  return row;
}

/** A statement as the database owner (the tests' own connection may be the least-privilege role, which may not delete). */
async function asOwner(sql: string, bind: unknown[] = []): Promise<void> {
  const client = new Client({ connectionString: ctx.ownerUrl });
  await client.connect();
  try {
    await client.query(sql, bind);
  } finally {
    await client.end();
  }
}

/** Runs `body` while a transaction of this database (the owner's) is open with an id, which `body` gets; rolls it back after. */
async function withOpenTransaction(body: (xid: bigint) => Promise<void>): Promise<void> {
  const holder = new Client({ connectionString: ctx.ownerUrl });
  await holder.connect();
  try {
    await holder.query('BEGIN');
    const { rows } = await holder.query<{ xid: string }>('SELECT pg_current_xact_id()::text AS xid');
    await body(BigInt(rows[0].xid));
  } finally {
    await holder.query('ROLLBACK').catch(() => undefined);
    await holder.end();
  }
}

/** A user with two lots, one charge and one open hold: a ledger that reconciles. */
async function busyUser(prefix: string): Promise<{ id: string; lot: string }> {
  const user = userWithRole('user');
  const id = `${prefix}-${user.id}`;
  const lot = await grantDirect(ctx.db, id, 30);
  await grantDirect(ctx.db, id, 10, new Date(Date.now() + 86_400_000));
  await chargeUsage(ctx, id, micro(3));
  await holdForSession(ctx, id, `s-${id}`, micro(2));
  return { id, lot };
}

describe('GET /api/admin/reconcile modes', () => {
  let a: { id: string; lot: string };
  let b: { id: string; lot: string };
  let c: { id: string; lot: string };

  beforeAll(async () => {
    a = await busyUser('ra');
    b = await busyUser('rb');
    c = await busyUser('rc');
  });

  test('When incremental is asked for before any clean run, then the whole ledger is checked (mode full) and the checkpoint is set', async () => {
    expect(await checkpoint()).toBeUndefined();

    const res = await reconcile({ mode: 'incremental' });

    expect(res.status).toBe(200);
    expect(reconcileResponse.safeParse(res.body).success).toBe(true);
    expect(res.body).toMatchObject({ ok: true, mode: 'full', since: null, discrepancies: [] });
    expect(res.body.checkedUsers).toBe(await count(ctx.db, 'user_accounts'));
    expect(await checkpoint()).toBeDefined();
  });

  test('When no mode is given, then it is a full run over every user', async () => {
    const res = await reconcile();
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ ok: true, mode: 'full', since: null });
    expect(res.body.checkedUsers).toBe(await count(ctx.db, 'user_accounts'));
  });

  test('When one user was charged since a clean run, then incremental checks that user only, and after it nothing', async () => {
    await settle();
    const clean = await reconcile({ mode: 'full' });
    expect(clean.body.ok).toBe(true);
    const after = await checkpoint();
    await chargeUsage(ctx, b.id, micro(1));
    await settle();

    const res = await reconcile({ mode: 'incremental' });

    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ ok: true, mode: 'incremental', checkedUsers: 1, checkedAllocations: 2, discrepancies: [] });
    expect(res.body.since).toBe(after!.taken_at.toISOString());
    // As before the first run: another test file's transaction open at that run's snapshot would hold its
    // checkpoint back, and this user would rightly be checked again.
    await settle();
    const again = await reconcile({ mode: 'incremental' });
    expect(again.body).toMatchObject({ ok: true, mode: 'incremental', checkedUsers: 0, checkedAllocations: 0 });
  });

  test('When a lot of a user untouched since the checkpoint is changed by hand, then incremental, full and per-user runs all report it, and the checkpoint stays', async () => {
    await settle();
    expect((await reconcile({ mode: 'incremental' })).body.ok).toBe(true);
    const before = await checkpoint();
    // Within the table's own constraints (0 <= remaining <= total): only reconcile can tell.
    await ctx.db.query(`UPDATE credit_allocations SET remaining_credits = remaining_credits - 1000000 WHERE id = $1 RETURNING 1`, [c.lot]);
    const expected = { userId: c.id, allocationId: c.lot, sessionId: null, kind: 'remaining', expected: 30, actual: 29 };

    const incremental = await reconcile({ mode: 'incremental' });
    const full = await reconcile({ mode: 'full' });
    const own = await reconcile({ userId: c.id });
    const other = await reconcile({ userId: a.id });

    expect(incremental.body).toMatchObject({ ok: false, mode: 'incremental', checkedUsers: 1 });
    expect(incremental.body.discrepancies).toEqual([expected]);
    expect(full.body).toMatchObject({ ok: false, mode: 'full' });
    expect(full.body.discrepancies).toEqual([expected]);
    expect(own.body).toMatchObject({ ok: false, mode: 'user', checkedUsers: 1, checkedAllocations: 2, discrepancies: [expected] });
    expect(other.body).toMatchObject({ ok: true, mode: 'user', checkedUsers: 1, checkedAllocations: 2, discrepancies: [] });
    // Failed runs leave the checkpoint where it was and remember the user.
    expect(await checkpoint()).toEqual(before);
    expect(await count(ctx.db, 'reconcile_dirty', `user_id = $1 AND reason = 'discrepancy'`, [c.id])).toBe(1);

    // Put back: the next incremental run checks c (changed, and remembered), is clean, and clears the note.
    await ctx.db.query(`UPDATE credit_allocations SET remaining_credits = remaining_credits + 1000000 WHERE id = $1 RETURNING 1`, [c.lot]);
    const fixed = await reconcile({ mode: 'incremental' });
    expect(fixed.body).toMatchObject({ ok: true, mode: 'incremental' });
    expect(fixed.body.checkedUsers).toBeGreaterThanOrEqual(1);
    expect(BigInt((await checkpoint())!.snapshot_xmin)).toBeGreaterThan(BigInt(before!.snapshot_xmin));
    expect(await count(ctx.db, 'reconcile_dirty')).toBe(0);
  });

  test('When a hold leg is deleted (no row is left to carry a new xmin), then incremental still checks its user and reports it', async () => {
    await settle();
    expect((await reconcile({ mode: 'incremental' })).body.ok).toBe(true);
    await settle();

    await asOwner(`DELETE FROM session_holds WHERE user_id = $1`, [a.id]);
    const res = await reconcile({ mode: 'incremental' });

    expect(res.body).toMatchObject({ ok: false, mode: 'incremental', checkedUsers: 1 });
    expect(res.body.discrepancies).toEqual(
      expect.arrayContaining([expect.objectContaining({ userId: a.id, sessionId: `s-${a.id}`, kind: 'leg_held', expected: 2, actual: 0 })]),
    );
    expect((await reconcile({ mode: 'full' })).body.ok).toBe(false);
    // Put the leg back as it was (the lot's rows say 2 credits held by the still-active session).
    await asOwner(
      `INSERT INTO session_holds (session_id, allocation_id, user_id, held_credits)
       SELECT session_id, allocation_id, user_id, sum(amount) FROM credit_transactions
        WHERE user_id = $1 AND type = 'hold' GROUP BY 1, 2, 3`,
      [a.id],
    );
    expect((await reconcile({ mode: 'incremental' })).body.ok).toBe(true);
  });

  test('When two incremental runs go at once with traffic on other users, then both answer, the ledger stays clean and the checkpoint only moves forward', async () => {
    const traffic = await Promise.all([busyUser('rt1'), busyUser('rt2'), busyUser('rt3')]);
    const before = BigInt((await checkpoint())!.snapshot_xmin);
    // Bounded: 3 rounds of (a charge per user + two incremental runs), all at once.
    for (let round = 0; round < 3; round++) {
      const runs = await Promise.all([
        reconcile({ mode: 'incremental' }),
        reconcile({ mode: 'incremental' }),
        ...traffic.map((u) => chargeUsage(ctx, u.id, micro(1)).then(() => null)),
      ]);
      for (const run of runs.slice(0, 2)) expect(run!.body).toMatchObject({ ok: true, mode: 'incremental' });
    }
    await settle();
    const last = await reconcile({ mode: 'incremental' });
    expect(last.body).toMatchObject({ ok: true, mode: 'incremental' });
    expect((await reconcile({ mode: 'full' })).body.ok).toBe(true);
    expect(BigInt((await checkpoint())!.snapshot_xmin)).toBeGreaterThan(before);
    expect(await count(ctx.db, 'reconcile_checkpoints')).toBe(1);
  });

  test('When a transaction the run cannot place holds its horizon below the checkpoint, then incremental still uses the checkpoint, which does not move back', async () => {
    await settle();
    // A transaction open with an id, which every run's horizon stops at while it is open. It stands in for one
    // of another database that a run cannot place (hidden from its role, or ended before its read): that is
    // how a clean run can leave the checkpoint above a later run's horizon. (It is this database's here, to
    // hold the horizon for certain; it writes nothing and is rolled back.)
    await withOpenTransaction(async (xid) => {
      // The checkpoint just past it.
      await asOwner(`UPDATE reconcile_checkpoints SET snapshot_xmin = $1::bigint`, [String(xid + 1n)]);
      await chargeUsage(ctx, b.id, micro(1));

      const res = await reconcile({ mode: 'incremental' });

      expect(res.body).toMatchObject({ ok: true, mode: 'incremental', checkedUsers: 1, discrepancies: [] });
      expect((await checkpoint())!.snapshot_xmin).toBe(String(xid + 1n));
    });
  });

  test('When a run is told before its snapshot that a running transaction is another database\'s, then its horizon passes that transaction', async () => {
    await settle();
    await withOpenTransaction(async (xid) => {
      // A later transaction that ends: the snapshot's xmax (one past the newest ended one) passes the holder,
      // which is then in the snapshot's list of running transactions.
      await asOwner(`SELECT pg_current_xact_id()`);
      const ledger = ledgerOf(ctx.db);
      const horizon = async (elsewhereBefore: string[]) =>
        (await ctx.db.transaction((tx) => ledger.reconcileSnapshot(60_000, tx, elsewhereBefore))).snapshotXmin;

      expect(await horizon([])).toBeLessThanOrEqual(xid);
      // (A transaction of another database that this role cannot see may hold both horizons lower still.)
      expect(await horizon([String(xid % 4294967296n)])).not.toBe(xid);
    });
  });

  test('When nothing has ended since a clean run left the checkpoint at its xmax, then the next incremental run still uses it', async () => {
    await settle();
    expect((await reconcile({ mode: 'incremental' })).body.ok).toBe(true);
    // The checkpoint one past the transaction that sets it: the xmax the next snapshot has when nothing else
    // ends in between (on a quiet server, as when this file runs alone), which a clean run with nothing
    // running leaves as its horizon.
    await asOwner(`UPDATE reconcile_checkpoints SET snapshot_xmin = pg_current_xact_id()::text::bigint + 1`);

    const res = await reconcile({ mode: 'incremental' });

    expect(res.body).toMatchObject({ ok: true, mode: 'incremental' });
  });
});

describe('GET /api/admin/reconcile validation', () => {
  test.each([
    ['an unknown mode', { mode: 'partial' }],
    ['mode and userId together', { mode: 'full', userId: 'someone' }],
    ['an empty userId', { userId: '' }],
  ])('When the query has %s, then 400 VALIDATION_ERROR and nothing runs', async (_name, query) => {
    const before = await checkpoint();
    const res = await reconcile(query);
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('VALIDATION_ERROR');
    expect(await checkpoint()).toEqual(before);
  });

  test('When the userId was never seen, then 404 NOT_FOUND', async () => {
    const res = await reconcile({ userId: 'nobody-ever' });
    expect(res.status).toBe(404);
    expect(res.body.error.code).toBe('NOT_FOUND');
  });

  test('When a supervisor asks for a per-user reconcile, then 403', async () => {
    const res = await request(ctx.app).get('/api/admin/reconcile').query({ userId: 'x' }).set('Authorization', userWithRole('supervisor').auth);
    expect(res.status).toBe(403);
  });
});
