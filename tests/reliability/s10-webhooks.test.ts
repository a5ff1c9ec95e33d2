import { startCluster, type Cluster } from './harness/cluster';
import { figure } from './harness/figures';
import { api, call } from './harness/http';
import { runLoad, sleep, Tally, waitFor } from './harness/load';
import { allocate, initialize, pick, recordUsage } from './harness/ops';
import { ServiceProcess } from './harness/service';
import { tokenFor } from '../support/tokens';
import { Receiver } from '../events/receiver';

/**
 * Scenario 10 (webhooks, docs/events.md): real service processes deliver the outbox to a real receiver on
 * loopback that verifies every Standard Webhooks signature.
 *  a) kill -9 of the instance delivering, under load: a second instance takes over once the dead one's
 *     leases run out (WEBHOOK_TIMEOUT_MS + 30 s); every committed event is delivered at least once, none for a
 *     change that rolled back, and a duplicate carries the same webhook-id and the same bytes.
 *  b) 3 instances dispatch 10,000 events to one endpoint: each delivered; duplicates counted and reported.
 */
const admin = tokenFor({ sub: 's10-admin', role: 'admin', expiresIn: '2h' });
const supervisor = tokenFor({ sub: 's10-supervisor', role: 'supervisor', expiresIn: '2h' });
const WEBHOOK_ENV = {
  WEBHOOK_ALLOW_PRIVATE: 'true',
  WEBHOOK_DISPATCH_INTERVAL_MS: '20',
  WEBHOOK_RETRY_BASE_MS: '200',
  WEBHOOK_DISABLE_AFTER_FAILURES: '0',
  LOW_BALANCE_THRESHOLDS: '10,5,1',
};

async function createEndpoint(url: string, receiver: Receiver, events: string[] = ['*']): Promise<string> {
  const res = await api(url, admin, 'POST', '/api/webhooks', { url: receiver.url, events });
  expect(res.status).toBe(201);
  const body = res.json as { id: string; secret: string };
  receiver.secret = body.secret;
  return body.id;
}

/** Webhook-ids of every committed event an endpoint created before them subscribes to (all but webhook.test). */
async function committedEventIds(cluster: Cluster): Promise<string[]> {
  const rows = await cluster.pg.sql<{ id: string }>(`SELECT id::text FROM events WHERE type <> 'webhook.test' ORDER BY id`);
  return rows.map((r) => `evt_${r.id}`);
}

/** How often each webhook-id arrived; and ids whose copies differ in their bytes (must be none). */
function copies(receiver: Receiver): { counts: Map<string, number>; differing: string[] } {
  const counts = new Map<string, number>();
  const raw = new Map<string, string>();
  const differing: string[] = [];
  for (const r of receiver.received) {
    counts.set(r.id, (counts.get(r.id) ?? 0) + 1);
    if (raw.has(r.id) && raw.get(r.id) !== r.raw) differing.push(r.id);
    raw.set(r.id, r.raw);
    expect(r.body.id).toBe(r.id);
  }
  return { counts, differing };
}

async function successesOf(service: ServiceProcess): Promise<number> {
  const res = await call(service.url, { path: '/metrics' });
  const match = /^webhook_deliveries_total\{outcome="success"\} (\d+)/m.exec(res.text);
  return match ? Number(match[1]) : 0;
}

test('When the instance delivering webhooks is killed with SIGKILL under load, then another delivers every committed event at least once, none of a rolled-back change, duplicates with the same id', async () => {
  const receiver = await new Receiver().start();
  // Received at once, answered 100 ms later: at any moment some sends are on the wire.
  receiver.delayMs = 100;
  const env = { ...WEBHOOK_ENV, WEBHOOK_TIMEOUT_MS: '2000', WEBHOOK_ENDPOINT_CONCURRENCY: '16' };
  const cluster = await startCluster({ name: 's10-kill', instances: 1, env });
  const [first] = cluster.services;
  const second = new ServiceProcess({ name: 's10-kill-2', databaseUrl: cluster.pg.url, logDir: cluster.logDir, env });
  try {
    await createEndpoint(first.url, receiver);
    const users = Array.from({ length: 12 }, (_, i) => ({ id: `s10-user-${i}`, token: tokenFor({ sub: `s10-user-${i}`, expiresIn: '2h' }) }));
    const tally = new Tally();
    let rolledBack = 0;
    // One operation of the load: a grant, some usage (crossing thresholds, going unpaid), a refused hold
    // (402: writes nothing), or a change that rolls back after its event was written.
    const operation = (url: string) => async (i: number) => {
      const user = pick(users);
      switch (i % 5) {
        case 0:
          tally.add(await allocate(url, supervisor, { userId: user.id, credits: 4 }));
          return;
        case 1:
        case 2:
          tally.add(await recordUsage(url, user.token, { service: 's10', operation: 'op', credits: 1.5 }));
          return;
        case 3:
          tally.add(await initialize(url, user.token, { estimatedCredits: 100_000 }));
          return;
        default: {
          const client = await cluster.pg.client();
          try {
            await client.query('BEGIN');
            await client.query(`SELECT * FROM acct_allocate($1, 5000000, NULL, NULL, 's10', 'rolled back')`, [`s10-rollback-${i}`]);
            await client.query('ROLLBACK');
            rolledBack++;
          } finally {
            await client.end();
          }
        }
      }
    };

    // Phase 1: load on the first instance, until it has delivered some and has sends on the wire; then kill -9.
    let killed = false;
    const load1 = runLoad({ concurrency: 6, maxOperations: 3_000, maxDurationMs: 60_000, operation: operation(first.url), shouldStop: () => killed });
    await waitFor('deliveries under way', () => receiver.received.length >= 150 && receiver.inFlight.size > 0, 60_000, 5);
    const onTheWire = [...receiver.inFlight];
    await first.kill();
    killed = true;
    await load1;
    const receivedAtKill = receiver.received.length;

    // Phase 2: another instance comes up and takes more load; it also delivers what the dead one had leased.
    await second.start();
    await runLoad({ concurrency: 6, maxOperations: 400, maxDurationMs: 60_000, operation: operation(second.url) });
    const started = Date.now();
    let committed: string[] = [];
    await waitFor(
      'every committed event delivered',
      async () => {
        // Received, and recorded: the dead instance's leases ran out and their deliveries were sent again.
        committed = await committedEventIds(cluster);
        const got = new Set(receiver.received.map((r) => r.id));
        const [open] = await cluster.pg.sql<{ n: string }>(`SELECT count(*)::text AS n FROM webhook_deliveries WHERE status <> 'succeeded'`);
        return committed.every((id) => got.has(id)) && open.n === '0';
      },
      120_000,
      500,
    );
    const catchUpMs = Date.now() - started; // mostly the dead instance's lease: WEBHOOK_TIMEOUT_MS + 30 s
    await sleep(500); // let a straggler arrive, if any

    const { counts, differing } = copies(receiver);
    const duplicates = receiver.received.length - counts.size;
    figure(
      `scenario 10a: kill -9 with ${onTheWire.length} sends on the wire after ${receivedAtKill} received; ${committed.length} committed events, ` +
        `${counts.size} delivered, ${duplicates} duplicates (same id, same bytes), ${rolledBack} rolled-back changes delivered 0; ` +
        `all recorded ${catchUpMs} ms after the second instance's load; requests ${tally.summary()}`,
    );
    expect(receiver.invalid).toBe(0);
    expect(tally.serverErrors).toBe(0);
    expect(rolledBack).toBeGreaterThan(0);
    // Every committed event at least once; nothing that is not a committed event (a rolled-back change's event
    // never existed outside its transaction, and its id is never reused).
    expect(new Set(counts.keys())).toEqual(new Set(committed));
    expect(receiver.received.filter((r) => r.body.userId?.startsWith('s10-rollback-'))).toEqual([]);
    expect(await cluster.pg.sql(`SELECT id FROM events WHERE user_id LIKE 's10-rollback-%'`)).toEqual([]);
    // What was on the wire when the process died was sent again by the other instance: same id, same bytes.
    expect(onTheWire.length).toBeGreaterThan(0);
    for (const id of onTheWire) expect({ id, copies: (counts.get(id) ?? 0) >= 2 }).toEqual({ id, copies: true });
    expect(differing).toEqual([]);
    const [open] = await cluster.pg.sql<{ n: string }>(`SELECT count(*)::text AS n FROM webhook_deliveries WHERE status <> 'succeeded'`);
    expect(open.n).toBe('0');
  } finally {
    await second.stop().catch(() => second.kill());
    await cluster.stop();
    await receiver.stop();
  }
}, 300_000);

test('When 3 instances dispatch 10,000 events to one endpoint, then each is delivered; duplicates are counted and reported', async () => {
  const EVENTS = Number(process.env.RELIABILITY_WEBHOOK_EVENTS ?? 10_000);
  const receiver = await new Receiver().start();
  const cluster = await startCluster({
    name: 's10-fanout',
    instances: 3,
    env: { ...WEBHOOK_ENV, WEBHOOK_TIMEOUT_MS: '5000', WEBHOOK_ENDPOINT_CONCURRENCY: '32', SWEEPER_INTERVAL_MS: '5000' },
  });
  try {
    await createEndpoint(cluster.services[0].url, receiver, ['session.expired']);
    const started = Date.now();
    // Written while the instances run, 1,000 per transaction, as a burst of traffic would.
    for (let from = 1; from <= EVENTS; from += 1_000) {
      await cluster.pg.sql(
        `SELECT acct_event_emit('session.expired', 's10-fan-' || (g % 100), jsonb_build_object('n', g)) FROM generate_series($1::int, $2::int) g`,
        [from, Math.min(from + 999, EVENTS)],
      );
    }
    await waitFor(
      `${EVENTS} events delivered`,
      () => {
        const n = new Set(receiver.received.map((r) => r.id)).size;
        if (process.env.RELIABILITY_VERBOSE) process.stdout.write(`${Date.now() - started} ms: ${n}\n`);
        return n >= EVENTS;
      },
      150_000,
      1_000,
    ).catch(async (error: Error) => {
      // What is missing, and what the outbox says about it.
      const got = new Set(receiver.received.map((r) => r.id));
      const missing = (await committedEventIds(cluster)).filter((id) => !got.has(id)).slice(0, 10);
      const rows = await cluster.pg.sql(
        `SELECT e.id, e.fanned_out, e.created_at, d.id AS delivery, d.status, d.attempts, d.next_attempt_at, d.last_status_code, d.last_error, now() AS now
           FROM events e LEFT JOIN webhook_deliveries d ON d.event_id = e.id WHERE e.id = ANY ($1::bigint[])`,
        [missing.map((id) => id.slice(4))],
      );
      throw new Error(`${error.message}; invalid signatures ${receiver.invalid}; missing ${JSON.stringify(rows)}`);
    });
    const elapsedMs = Date.now() - started;
    await sleep(1_000); // a late duplicate would arrive now

    const committed = await committedEventIds(cluster);
    const { counts, differing } = copies(receiver);
    const duplicates = receiver.received.length - counts.size;
    const byInstance = await Promise.all(cluster.services.map(successesOf));
    figure(
      `scenario 10b: 3 instances, ${committed.length} events to one endpoint in ${elapsedMs} ms (${Math.round((committed.length / elapsedMs) * 1000)}/s): ` +
        `${counts.size} delivered, ${duplicates} duplicates; successes per instance ${byInstance.join(' / ')}`,
    );
    expect(committed).toHaveLength(EVENTS);
    expect(receiver.invalid).toBe(0);
    expect(new Set(counts.keys())).toEqual(new Set(committed));
    expect(differing).toEqual([]);
    // No instance died, so no lease ran out: exactly once.
    expect(duplicates).toBe(0);
    expect(byInstance.reduce((a, b) => a + b, 0)).toBe(EVENTS);
    const [row] = await cluster.pg.sql<{ n: string }>(`SELECT count(*)::text AS n FROM webhook_deliveries WHERE status = 'succeeded' AND attempts = 1`);
    expect(Number(row.n)).toBe(EVENTS);
  } finally {
    await cluster.stop();
    await receiver.stop();
  }
}, 300_000);
