import fc from 'fast-check';
import request from 'supertest';
import { fromDb, toCredits } from '../../src/lib/money';
import { splitWeeks } from '../../src/services/usage.service';
import { createTestContext, type TestContext } from '../support/context';
import { grantDirect } from '../support/db';
import { userWithRole } from '../support/tokens';
import { NO_MISMATCHES, recordAt, rollupMismatches } from './helpers';

let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext();
});
afterAll(() => ctx.close());

const DAY = 86_400_000;
const utcDay = (ms: number) => new Date(ms).toISOString().slice(0, 10);

/** An instant written with a UTC offset, e.g. 2026-03-10T05:29:59.999+05:30. */
function withOffset(ms: number, offsetMinutes: number): string {
  if (offsetMinutes === 0) return new Date(ms).toISOString();
  const local = new Date(ms + offsetMinutes * 60_000).toISOString().slice(0, 23);
  const sign = offsetMinutes > 0 ? '+' : '-';
  const abs = Math.abs(offsetMinutes);
  return `${local}${sign}${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`;
}

interface Expected {
  requests: number;
  credits: string;
  unpaid: string;
  refunded: string;
  input: number;
  output: number;
  cached: number;
  cw: number;
  cw1h: number;
  reasoning: number;
}

/** The truth, straight from usage_records: sums over records whose UTC day is in [fromDay, toDay]. */
async function rawSums(where: string, bind: unknown[], groupBy?: string) {
  return ctx.db.query<Expected & { key: string | null }>(
    `SELECT ${groupBy ?? 'NULL'} AS key, count(*)::int AS requests, coalesce(sum(credits - refunded_credits), 0)::text AS credits,
            coalesce(sum(unpaid_credits), 0)::text AS unpaid, coalesce(sum(refunded_credits), 0)::text AS refunded, coalesce(sum(input_tokens), 0)::int AS input,
            coalesce(sum(output_tokens), 0)::int AS output, coalesce(sum(cached_input_tokens), 0)::int AS cached,
            coalesce(sum(cache_write_tokens), 0)::int AS cw, coalesce(sum(cache_write_1h_tokens), 0)::int AS cw1h,
            coalesce(sum(reasoning_tokens), 0)::int AS reasoning
       FROM usage_records WHERE ${where} ${groupBy ? `GROUP BY ${groupBy}` : ''}`,
    bind,
  );
}
const dayWhere = (first: number) => `(created_at AT TIME ZONE 'UTC')::date BETWEEN $${first}::date AND $${first + 1}::date`;

const asStats = (row: Expected) => ({
  requests: row.requests,
  credits: toCredits(fromDb(row.credits)),
  unpaidCredits: toCredits(fromDb(row.unpaid)),
  refundedCredits: toCredits(fromDb(row.refunded)),
  inputTokens: row.input,
  outputTokens: row.output,
  cachedInputTokens: row.cached,
  cacheWriteTokens: row.cw,
  cacheWrite1hTokens: row.cw1h,
  reasoningTokens: row.reasoning,
});

describe('rollups against raw records (property)', () => {
  // Sixteen UTC days from Monday 2026-03-09 (so ranges hold whole weeks and partial ones), and the
  // instants where day boundaries bite.
  const SPAN = 16;
  const base = Date.parse('2026-03-09T00:00:00Z');
  const boundaries = Array.from({ length: SPAN + 1 }, (_, d) => [base + d * DAY, base + d * DAY - 1])
    .flat()
    .filter((ms) => ms >= base && ms < base + SPAN * DAY);
  const instant = fc.oneof(
    fc.constantFrom(...boundaries).map((ms) => new Date(ms).toISOString()),
    // The last microsecond of a day, which a JavaScript Date cannot even represent.
    fc.integer({ min: 0, max: SPAN - 1 }).map((d) => `${utcDay(base + d * DAY)}T23:59:59.999999Z`),
    fc.integer({ min: 0, max: SPAN * DAY - 1 }).map((offset) => new Date(base + offset).toISOString()),
  );
  const record = fc.record({
    at: instant,
    user: fc.integer({ min: 0, max: 2 }),
    service: fc.constantFrom('chat', 'search', 'images'),
    operation: fc.constantFrom('completion', 'stream'),
    modelId: fc.constantFrom(null, 'gpt-4o', 'claude-opus-4'),
    inputTokens: fc.integer({ min: 0, max: 5000 }),
    outputTokens: fc.integer({ min: 0, max: 5000 }),
    credits: fc.bigInt({ min: 0n, max: 5_000_000n }),
  });
  const offsetMinutes = fc.constantFrom(0, 330, -480, 345, -210);
  const queryEnd = fc.record({
    ms: fc.integer({ min: -3 * DAY, max: (SPAN + 3) * DAY }).map((o) => base + o),
    offset: offsetMinutes,
    dateOnly: fc.boolean(),
  });

  let run = 0;
  test('When random records (day boundaries included) are recorded, then user and system stats equal sums over the raw records for any range and offset', async () => {
    const admin = userWithRole('admin');
    await fc.assert(
      fc.asyncProperty(fc.array(record, { minLength: 1, maxLength: 16 }), queryEnd, queryEnd, async (records, a, b) => {
        run++;
        const users = [0, 1, 2].map((i) => userWithRole('user', `prop-${run}-${i}`));
        // A small balance so some records are partly unpaid.
        await grantDirect(ctx.db, users[0].id, 3);
        for (const r of records) {
          await recordAt(ctx.db, r.at, {
            userId: users[r.user].id,
            service: r.service,
            operation: r.operation,
            modelId: r.modelId,
            inputTokens: r.inputTokens,
            outputTokens: r.outputTokens,
            credits: r.credits,
          });
        }
        const [lo, hi] = a.ms <= b.ms ? [a, b] : [b, a];
        const from = lo.dateOnly ? utcDay(lo.ms) : withOffset(lo.ms, lo.offset);
        const to = hi.dateOnly ? utcDay(hi.ms) : withOffset(hi.ms, hi.offset);
        const fromDay = utcDay(lo.ms);
        const toDay = utcDay(hi.ms);

        // User stats for user 0.
        const res = await request(ctx.app).get('/api/usage/stats').query({ from, to }).set('Authorization', users[0].auth);
        expect(res.status).toBe(200);
        expect(res.body.from).toBe(`${fromDay}T00:00:00.000Z`);
        expect(res.body.to).toBe(`${toDay}T23:59:59.999Z`);
        const userWhere = `user_id = $1 AND ${dayWhere(2)}`;
        const userBind = [users[0].id, fromDay, toDay];
        const [total] = await rawSums(userWhere, userBind);
        expect(res.body.totals).toEqual(asStats(total));
        const byService = await rawSums(userWhere, userBind, `service || '/' || operation`);
        expect(Object.fromEntries(res.body.byService.map((s: { service: string; operation: string; [k: string]: unknown }) => {
          const { service, operation, ...rest } = s;
          return [`${service}/${operation}`, rest];
        }))).toEqual(Object.fromEntries(byService.map((r) => [r.key, asStats(r)])));
        const byModel = await rawSums(userWhere, userBind, `coalesce(model_id, '')`);
        expect(Object.fromEntries(res.body.byModel.map(({ modelId, ...rest }: { modelId: string | null }) => [modelId ?? '', rest]))).toEqual(
          Object.fromEntries(byModel.map((r) => [r.key, asStats(r)])),
        );
        const byDay = await rawSums(userWhere, userBind, `((created_at AT TIME ZONE 'UTC')::date)::text`);
        const dayMap = new Map(byDay.map((r) => [r.key, r]));
        const expectedDays = (Date.parse(toDay) - Date.parse(fromDay)) / DAY + 1;
        expect(res.body.daily).toHaveLength(expectedDays);
        for (const d of res.body.daily) {
          const raw = dayMap.get(d.date);
          expect(d).toEqual({ date: d.date, requests: raw?.requests ?? 0, credits: raw ? toCredits(fromDb(raw.credits)) : 0 });
        }

        // System stats over everyone recorded so far (every run adds to the same database).
        const sys = await request(ctx.app).get('/api/usage/system-stats').query({ from, to }).set('Authorization', admin.auth);
        expect(sys.status).toBe(200);
        const [sysTotal] = await rawSums(dayWhere(1), [fromDay, toDay]);
        const [active] = await ctx.db.query<{ n: number }>(
          `SELECT count(DISTINCT user_id)::int AS n FROM usage_records WHERE ${dayWhere(1)}`,
          [fromDay, toDay],
        );
        expect(sys.body.totals).toEqual({ ...asStats(sysTotal), activeUsers: active.n });
        const sysByModel = await rawSums(dayWhere(1), [fromDay, toDay], `coalesce(model_id, '')`);
        expect(Object.fromEntries(sys.body.byModel.map(({ modelId, ...rest }: { modelId: string | null }) => [modelId ?? '', rest]))).toEqual(
          Object.fromEntries(sysByModel.map((r) => [r.key, asStats(r)])),
        );
        const topUsers = await ctx.db.query<{ user_id: string; requests: number; credits: string; unpaid: string }>(
          `SELECT user_id, count(*)::int AS requests, sum(credits)::text AS credits, sum(unpaid_credits)::text AS unpaid
             FROM usage_records WHERE ${dayWhere(1)} GROUP BY user_id ORDER BY sum(credits) DESC, user_id LIMIT 10`,
          [fromDay, toDay],
        );
        expect(sys.body.topUsers).toEqual(
          topUsers.map((u) => ({ userId: u.user_id, requests: u.requests, credits: toCredits(fromDb(u.credits)), unpaidCredits: toCredits(fromDb(u.unpaid)) })),
        );
        const sysDay = new Map((await rawSums(dayWhere(1), [fromDay, toDay], `((created_at AT TIME ZONE 'UTC')::date)::text`)).map((r) => [r.key, r]));
        for (const d of sys.body.daily) {
          const raw = sysDay.get(d.date);
          expect(d).toEqual({ date: d.date, requests: raw?.requests ?? 0, credits: raw ? toCredits(fromDb(raw.credits)) : 0 });
        }

        // All-time figures: consumed and unpaid equal the sums over every record.
        const [all] = await ctx.db.query<{ consumed: string; unpaid: string }>(
          `SELECT coalesce(sum(charged_credits), 0)::text AS consumed, coalesce(sum(unpaid_credits), 0)::text AS unpaid FROM usage_records`,
        );
        expect(sys.body.credits.consumed).toBe(toCredits(fromDb(all.consumed)));
        expect(sys.body.credits.unpaid).toBe(toCredits(fromDb(all.unpaid)));
        // And every rollup, row by row.
        expect(await rollupMismatches(ctx.db)).toEqual(NO_MISMATCHES);
      }),
      { numRuns: 25, seed: Number(process.env.FC_SEED ?? Date.now() % 2 ** 31) },
    );
  });
});

describe('splitWeeks', () => {
  test('When any range is split, then whole Monday-to-Sunday weeks and the leftover days cover it exactly once', () => {
    const start = Date.parse('2024-01-01');
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 800 }), fc.integer({ min: 0, max: 365 }), (offset, length) => {
        const fromDay = utcDay(start + offset * DAY);
        const toDay = utcDay(start + (offset + length) * DAY);
        const { weeks, days } = splitWeeks({ fromDay, toDay });
        const covered: string[] = [];
        for (const [first, last] of days) for (let d = Date.parse(first); d <= Date.parse(last); d += DAY) covered.push(utcDay(d));
        if (weeks) {
          for (let w = Date.parse(weeks[0]); w <= Date.parse(weeks[1]); w += 7 * DAY) {
            expect(new Date(w).getUTCDay()).toBe(1);
            for (let d = 0; d < 7; d++) covered.push(utcDay(w + d * DAY));
          }
        }
        const expected = Array.from({ length: length + 1 }, (_, i) => utcDay(start + (offset + i) * DAY));
        expect(covered.sort()).toEqual(expected);
        // A range that holds a whole week uses it.
        if (length >= 13) expect(weeks).not.toBeNull();
      }),
      { numRuns: 500 },
    );
  });
});

describe('day granularity', () => {
  test('When a range starts late on a day, then the whole UTC day is counted (from/to are truncated to UTC days)', async () => {
    const nora = userWithRole('user');
    await recordAt(ctx.db, '2026-05-01T00:00:00Z', { userId: nora.id, credits: 1_000_000n });
    await recordAt(ctx.db, '2026-05-01T23:59:59.999999Z', { userId: nora.id, credits: 2_000_000n });
    await recordAt(ctx.db, '2026-05-02T00:00:00Z', { userId: nora.id, credits: 4_000_000n });

    const res = await request(ctx.app)
      .get('/api/usage/stats')
      .query({ from: '2026-05-01T22:00:00Z', to: '2026-05-01T22:30:00Z' })
      .set('Authorization', nora.auth);

    expect(res.status).toBe(200);
    expect(res.body.totals).toMatchObject({ requests: 2, credits: 3 });
    expect(res.body.daily).toEqual([{ date: '2026-05-01', requests: 2, credits: 3 }]);
  });

  test('When the bounds carry offsets, then they are converted to UTC before truncation', async () => {
    const oscar = userWithRole('user');
    await recordAt(ctx.db, '2026-06-01T12:00:00Z', { userId: oscar.id, credits: 1_000_000n });
    await recordAt(ctx.db, '2026-06-02T12:00:00Z', { userId: oscar.id, credits: 2_000_000n });

    // 2026-06-02T03:00+05:30 is 2026-06-01T21:30Z: only June 1st.
    const res = await request(ctx.app)
      .get('/api/usage/stats')
      .query({ from: '2026-06-01T00:00:00Z', to: '2026-06-02T03:00:00+05:30' })
      .set('Authorization', oscar.auth);
    expect(res.body.totals.credits).toBe(1);

    // 2026-06-01T20:00-08:00 is 2026-06-02T04:00Z: June 2nd only.
    const west = await request(ctx.app)
      .get('/api/usage/stats')
      .query({ from: '2026-06-01T20:00:00-08:00', to: '2026-06-02' })
      .set('Authorization', oscar.auth);
    expect(west.body.totals.credits).toBe(2);
    expect(west.body.daily).toEqual([{ date: '2026-06-02', requests: 1, credits: 2 }]);
  });

  test('When no range is given, then the last 30 UTC days, today included, with a zero for each empty day', async () => {
    const pia = userWithRole('user');
    await grantDirect(ctx.db, pia.id, 100);
    await request(ctx.app).post('/api/usage/record').set('Authorization', pia.auth).send({ service: 'chat', operation: 'c', credits: 1.5 });

    const res = await request(ctx.app).get('/api/usage/stats').set('Authorization', pia.auth);

    expect(res.status).toBe(200);
    const today = utcDay(Date.now());
    expect(res.body.daily).toHaveLength(30);
    expect(res.body.daily[29]).toEqual({ date: today, requests: 1, credits: 1.5 });
    expect(res.body.daily[0]).toEqual({ date: utcDay(Date.parse(today) - 29 * DAY), requests: 0, credits: 0 });
    expect(res.body.to).toBe(`${today}T23:59:59.999Z`);
    expect(res.body.byService).toEqual([
      { service: 'chat', operation: 'c', requests: 1, credits: 1.5, unpaidCredits: 0, refundedCredits: 0, inputTokens: 0, outputTokens: 0, cachedInputTokens: 0, cacheWriteTokens: 0, cacheWrite1hTokens: 0, reasoningTokens: 0 },
    ]);
    expect(res.body.byModel).toEqual([
      { modelId: null, requests: 1, credits: 1.5, unpaidCredits: 0, refundedCredits: 0, inputTokens: 0, outputTokens: 0, cachedInputTokens: 0, cacheWriteTokens: 0, cacheWrite1hTokens: 0, reasoningTokens: 0 },
    ]);
  });
});

describe('range validation', () => {
  const user = () => userWithRole('user');
  const bad: Array<[string, Record<string, string>, string]> = [
    ['from is after to', { from: '2026-05-02', to: '2026-05-01' }, 'from'],
    ['from is after to within the same day', { from: '2026-05-01T10:00:00Z', to: '2026-05-01T09:00:00Z' }, 'from'],
    ['the range covers 367 days', { from: '2025-01-01', to: '2026-01-02' }, 'to'],
    ['from is not a date', { from: 'yesterday', to: '2026-05-01' }, 'from'],
    ['the date does not exist', { from: '2026-02-30', to: '2026-03-01' }, 'from'],
    ['a date-time has no zone', { from: '2026-05-01T10:00:00', to: '2026-05-02' }, 'from'],
    ['an unknown parameter is sent', { from: '2026-05-01', to: '2026-05-02', userId: 'someone' }, 'userId'],
  ];
  test.each(bad)('When %s, then 400 VALIDATION_ERROR', async (_name, query, path) => {
    const res = await request(ctx.app).get('/api/usage/stats').query(query).set('Authorization', user().auth);
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('VALIDATION_ERROR');
    expect(res.body.error.details.problems).toEqual(expect.arrayContaining([expect.objectContaining({ location: 'query', path })]));
  });

  test('When the range covers exactly 366 days, then it is accepted', async () => {
    const res = await request(ctx.app).get('/api/usage/stats').query({ from: '2024-01-01', to: '2024-12-31' }).set('Authorization', user().auth);
    expect(res.status).toBe(200);
    expect(res.body.daily).toHaveLength(366);
  });

  test('When only from is given and it is more than 366 days ago, then 400', async () => {
    const res = await request(ctx.app).get('/api/usage/stats').query({ from: '2020-01-01' }).set('Authorization', user().auth);
    expect(res.status).toBe(400);
  });

  test('When only to is given, then the 30 days ending that day', async () => {
    const res = await request(ctx.app).get('/api/usage/stats').query({ to: '2026-03-30' }).set('Authorization', user().auth);
    expect(res.status).toBe(200);
    expect(res.body.from).toBe('2026-03-01T00:00:00.000Z');
    expect(res.body.daily).toHaveLength(30);
  });

  test('When a range ends on 9999-12-31, the last day there is, then its daily series ends there (all three stats routes)', async () => {
    // The day after it is written "+010000-01-01", which sorts before it: a series built by comparing days as
    // text never ended, and hung the process (found by a black-box fuzz).
    const admin = userWithRole('admin');
    const owner = user();
    const routes = [
      { path: '/api/usage/stats', auth: owner.auth },
      { path: `/api/usage/stats/${encodeURIComponent(owner.id)}`, auth: admin.auth },
      { path: '/api/usage/system-stats', auth: admin.auth },
    ];
    for (const { path, auth } of routes) {
      const res = await request(ctx.app).get(path).query({ from: '9999-12-20', to: '9999-12-31T23:59:59Z' }).set('Authorization', auth);
      expect([path, res.status]).toEqual([path, 200]);
      expect(res.body.daily.map((d: { date: string }) => d.date)).toEqual(Array.from({ length: 12 }, (_, i) => `9999-12-${20 + i}`));
    }
  });

  test('When system stats get a bad range, then 400 too', async () => {
    const res = await request(ctx.app).get('/api/usage/system-stats').query({ from: '2026-05-02', to: '2026-05-01' }).set('Authorization', userWithRole('admin').auth);
    expect(res.status).toBe(400);
  });
});

describe('who sees what', () => {
  test('When two users have usage, then each sees only their own stats', async () => {
    const quinn = userWithRole('user');
    const rose = userWithRole('user');
    await recordAt(ctx.db, '2026-07-01T10:00:00Z', { userId: quinn.id, credits: 1_000_000n });
    await recordAt(ctx.db, '2026-07-01T10:00:00Z', { userId: rose.id, credits: 7_000_000n });

    const res = await request(ctx.app).get('/api/usage/stats').query({ from: '2026-07-01', to: '2026-07-01' }).set('Authorization', quinn.auth);

    expect(res.body.userId).toBe(quinn.id);
    expect(res.body.totals).toMatchObject({ requests: 1, credits: 1 });
  });

  test('When a user asks for /stats/:userId, then 403, even for their own id', async () => {
    const sam = userWithRole('user');
    const other = await request(ctx.app).get(`/api/usage/stats/${encodeURIComponent('someone-else')}`).set('Authorization', sam.auth);
    expect(other.status).toBe(403);
    const own = await request(ctx.app).get(`/api/usage/stats/${encodeURIComponent(sam.id)}`).set('Authorization', sam.auth);
    expect(own.status).toBe(403);
    expect(own.body.error.code).toBe('FORBIDDEN');
  });

  test("When a supervisor asks for a user's stats, then they get them; for a user never seen, 404", async () => {
    const supervisor = userWithRole('supervisor');
    const tom = userWithRole('user');
    await recordAt(ctx.db, '2026-07-02T10:00:00Z', { userId: tom.id, credits: 3_000_000n });

    const res = await request(ctx.app).get(`/api/usage/stats/${tom.id}`).query({ from: '2026-07-02', to: '2026-07-02' }).set('Authorization', supervisor.auth);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ userId: tom.id, totals: { requests: 1, credits: 3 } });

    const missing = await request(ctx.app).get('/api/usage/stats/never-seen-user').set('Authorization', supervisor.auth);
    expect(missing.status).toBe(404);
    expect(missing.body.error.code).toBe('NOT_FOUND');
  });

  test('When a supervisor asks for system stats, then 403; an admin gets them', async () => {
    const res = await request(ctx.app).get('/api/usage/system-stats').set('Authorization', userWithRole('supervisor').auth);
    expect(res.status).toBe(403);
    const user = await request(ctx.app).get('/api/usage/system-stats').set('Authorization', userWithRole('user').auth);
    expect(user.status).toBe(403);
    const admin = await request(ctx.app).get('/api/usage/system-stats').set('Authorization', userWithRole('admin').auth);
    expect(admin.status).toBe(200);
    expect(Object.keys(admin.body).sort()).toEqual(['byModel', 'credits', 'daily', 'from', 'sessions', 'to', 'topUsers', 'totals']);
  });
});
