import { checkLedger } from './harness/checks';
import { startCluster, type Cluster } from './harness/cluster';
import { figure } from './harness/figures';
import { call, cutCall, type CallResult } from './harness/http';
import { Tally } from './harness/load';
import { allocate, initialize, MODEL, newId, randomInt } from './harness/ops';
import { SETTINGS } from './harness/settings';
import { tokenFor } from '../support/tokens';

/**
 * Scenario 5: the client's connection is cut after the request was sent (0-40 ms later: before, during
 * or after the server's work), so it cannot know whether anything happened. It retries the same request
 * with the same Idempotency-Key (or the same sessionId) on the OTHER instance until it gets an answer.
 * Every operation must have taken effect exactly once, and retries must return the first result.
 */
const N = SETTINGS.retryOps;
const user = { id: 's5-user', token: tokenFor({ sub: 's5-user', expiresIn: '2h' }) };
const supervisor = { id: 's5-supervisor', token: tokenFor({ sub: 's5-supervisor', role: 'supervisor', expiresIn: '2h' }) };
const admin = { token: tokenFor({ sub: 's5-admin', role: 'admin', expiresIn: '2h' }) };

let cluster: Cluster;
const urls = () => cluster.services.map((s) => s.url);

beforeAll(async () => {
  cluster = await startCluster({ name: 's5', instances: 2, env: { SWEEPER_INTERVAL_MS: '0' } });
  expect((await allocate(urls()[0], supervisor.token, { userId: user.id, credits: 100_000 })).status).toBe(201);
});
afterAll(() => cluster?.stop());

/** JSON with sorted keys, so two bodies that mean the same compare equal. */
const canonical = (value: unknown): string =>
  JSON.stringify(value, (_k, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b))) : v,
  );

const cuts = new Tally();
const retries = new Tally();

/**
 * The cut first attempt on instance A, then retries on instance B until the answer is not "still running"
 * (409 IDEMPOTENCY_IN_PROGRESS) or back-pressure (503). Returns the first complete answer.
 */
async function cutThenRetry(method: string, path: string, token: string, body: unknown, idempotencyKey?: string): Promise<{ first: CallResult; final: CallResult }> {
  const headers: Record<string, string> = { Authorization: `Bearer ${token}`, ...(idempotencyKey ? { 'Idempotency-Key': idempotencyKey } : {}) };
  const [a, b] = Math.random() < 0.5 ? urls() : [...urls()].reverse();
  const first = cuts.add(await cutCall(a, { method, path, headers, body }, randomInt(0, 40)));
  for (let attempt = 1; ; attempt++) {
    const res = retries.add(await call(b, { method, path, headers, body }));
    const inProgress = res.status === 409 && (res.json as { error?: { code?: string } })?.error?.code === 'IDEMPOTENCY_IN_PROGRESS';
    if ((!inProgress && res.status !== 503) || attempt >= 20) return { first, final: res };
    await new Promise((r) => setTimeout(r, 50 * attempt));
  }
}

test('When a cut money request is retried with the same Idempotency-Key or sessionId, then it took effect exactly once', async () => {
  const failures: string[] = [];
  const expect1 = async (what: string, sql: string, params: unknown[], expected: string) => {
    const [row] = await cluster.pg.sql<{ v: string }>(sql, params);
    if (String(row.v) !== expected) failures.push(`${what}: expected ${expected}, got ${row.v}`);
  };

  // Allocations: one lot per key, whatever happened to the first attempt.
  for (let i = 0; i < N; i++) {
    const key = newId('s5-alloc');
    const { final } = await cutThenRetry('POST', '/api/credits/allocate', supervisor.token, { userId: user.id, credits: 2, note: key }, key);
    if (final.status !== 201) failures.push(`allocate ${key}: ${final.status} ${final.text.slice(0, 200)}`);
    await expect1(`allocations for ${key}`, `SELECT count(*)::text AS v FROM credit_allocations WHERE note = $1`, [key], '1');
  }

  // Usage records: one record (and one charge) per key.
  for (let i = 0; i < N; i++) {
    const key = newId('s5-usage');
    const { final } = await cutThenRetry('POST', '/api/usage/record', user.token, { service: 'chat', operation: 'completion', credits: 0.5, metadata: { op: key } }, key);
    if (final.status !== 201) failures.push(`usage ${key}: ${final.status} ${final.text.slice(0, 200)}`);
    await expect1(`usage records for ${key}`, `SELECT count(*)::text AS v FROM usage_records WHERE metadata->>'op' = $1`, [key], '1');
  }

  // Initialize by sessionId (no Idempotency-Key): one session, one hold of the estimate.
  const sessions: string[] = [];
  for (let i = 0; i < N * 2; i++) {
    const sessionId = newId('s5-session');
    const { final } = await cutThenRetry('POST', '/api/streaming-sessions/initialize', user.token, { sessionId, modelId: MODEL, estimatedCredits: 1 });
    // 201 if the retry did the work, 200 if it found the session the cut attempt had opened.
    if (final.status !== 201 && final.status !== 200) failures.push(`initialize ${sessionId}: ${final.status} ${final.text.slice(0, 200)}`);
    await expect1(`holds for ${sessionId}`, `SELECT coalesce(sum(held_credits), 0)::text AS v FROM session_holds WHERE session_id = $1`, [sessionId], '1000000');
    await expect1(`hold rows for ${sessionId}`, `SELECT count(*)::text AS v FROM credit_transactions WHERE session_id = $1 AND type = 'hold'`, [sessionId], '1');
    sessions.push(sessionId);
  }

  // Finalize and abort by sessionId: settled once, one usage record, retries return the same result.
  for (const [i, sessionId] of sessions.entries()) {
    const path = i % 2 === 0 ? '/api/streaming-sessions/finalize' : '/api/streaming-sessions/abort';
    const body = i % 2 === 0 ? { sessionId, actualInputTokens: randomInt(0, 2000), actualOutputTokens: randomInt(0, 2000) } : { sessionId, actualInputTokens: randomInt(0, 500) };
    const { final } = await cutThenRetry('POST', path, user.token, body);
    if (final.status !== 200) failures.push(`${path} ${sessionId}: ${final.status} ${final.text.slice(0, 200)}`);
    const again = await call(urls()[i % 2], { method: 'POST', path, headers: { Authorization: `Bearer ${user.token}` }, body });
    if (again.status !== 200 || canonical(again.json) !== canonical(final.json)) failures.push(`${path} ${sessionId}: second retry differs: ${again.text.slice(0, 200)}`);
    await expect1(`usage records of ${sessionId}`, `SELECT count(*)::text AS v FROM usage_records WHERE session_id = $1`, [sessionId], '1');
    await expect1(`captures+releases of ${sessionId}`, `SELECT (sum(captured_credits + released_credits) = sum(held_credits))::text AS v FROM session_holds WHERE session_id = $1`, [sessionId], 'true');
  }

  const ledger = await checkLedger(cluster.pg, { url: urls()[0], adminToken: admin.token });
  expect(failures).toEqual([]);
  expect(ledger.problems).toEqual([]);
  const cutBeforeAnswer = cuts.count((s) => s === 0);
  figure(
    `scenario 5: ${cuts.total} money requests cut 0-40 ms after sending (${cutBeforeAnswer} before any answer) and retried on the other instance ` +
      `(allocate ${N}, usage ${N} by Idempotency-Key; initialize ${N * 2}, finalize ${N}, abort ${N} by sessionId): exactly one effect each, ` +
      `retries ${retries.summary()}; reconcile ok`,
  );
});

test('When the same Idempotency-Key arrives on two instances at once, then there is one effect and both get its result', async () => {
  const failures: string[] = [];
  const outcomes = new Tally();
  for (let i = 0; i < N; i++) {
    const key = newId('s5-dup');
    const send = (url: string) => allocate(url, supervisor.token, { userId: user.id, credits: 1, note: key }, key);
    const answers = await Promise.all([send(urls()[0]), send(urls()[1]), send(urls()[0]), send(urls()[1])]);
    answers.forEach((a) => outcomes.add(a));
    // Anyone told "still running" retries, and then must see the stored answer.
    const bodies = new Set<string>();
    for (const [j, a] of answers.entries()) {
      let res = a;
      for (let attempt = 0; res.status === 409 && attempt < 20; attempt++) {
        await new Promise((r) => setTimeout(r, 50));
        res = await send(urls()[j % 2]);
      }
      if (res.status !== 201) failures.push(`${key}: ${res.status} ${res.text.slice(0, 200)}`);
      // Compared canonically: a replay comes from jsonb, which does not keep key order.
      bodies.add(canonical((res.json as { allocation?: unknown })?.allocation));
    }
    if (bodies.size !== 1) failures.push(`${key}: different allocations returned: ${[...bodies].join(' | ')}`);
    const [row] = await cluster.pg.sql<{ n: string }>(`SELECT count(*)::text AS n FROM credit_allocations WHERE note = $1`, [key]);
    if (row.n !== '1') failures.push(`${key}: ${row.n} allocations`);
  }
  const ledger = await checkLedger(cluster.pg, { url: urls()[0], adminToken: admin.token });
  expect(failures).toEqual([]);
  expect(ledger.problems).toEqual([]);
  figure(`scenario 5b: ${N} keys each sent 4 times at once across 2 instances: one allocation per key, same allocation returned to all; first answers ${outcomes.summary()}`);
});

test('When a retry reuses the key with a different body, then it is refused and nothing more happens', async () => {
  const key = newId('s5-reuse');
  expect((await allocate(urls()[0], supervisor.token, { userId: user.id, credits: 3, note: key }, key)).status).toBe(201);
  const reused = await allocate(urls()[1], supervisor.token, { userId: user.id, credits: 300, note: key }, key);
  expect(reused.status).toBe(422);
  expect(reused.json).toMatchObject({ error: { code: 'IDEMPOTENCY_KEY_REUSED' } });
  const sessionId = newId('s5-reinit');
  expect((await initialize(urls()[0], user.token, { sessionId, estimatedCredits: 1 })).status).toBe(201);
  expect((await initialize(urls()[1], user.token, { sessionId, estimatedCredits: 50 })).status).toBe(422);
  const [row] = await cluster.pg.sql<{ n: string; held: string }>(
    `SELECT (SELECT count(*) FROM credit_allocations WHERE note = $1)::text AS n, (SELECT sum(held_credits) FROM session_holds WHERE session_id = $2)::text AS held`,
    [key, sessionId],
  );
  expect(row).toEqual({ n: '1', held: '1000000' });
});
