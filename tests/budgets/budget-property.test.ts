import fc from 'fast-check';
import type { Transaction } from 'sequelize';
import { pgErrorCode } from '../../src/db/database';
import { createTestContext, type TestContext } from '../support/context';

/**
 * Property: over random operations (open a hold, extend it, settle it, settle it again late, record usage,
 * with and without enforcement, late events, refund a record) and clock jumps across day/week/month and DST boundaries of several
 * zones, the budget functions decide and count exactly like an independent model. The clock is passed to
 * the SQL functions as their `p_at` argument (production passes now()); the model computes calendar
 * periods with Intl, not PostgreSQL.
 */
let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext();
});
afterAll(() => ctx.close());

type Period = 'day' | 'week' | 'month';
interface BudgetSpec {
  userId: string | null;
  orgId: string | null;
  period: Period;
  tz: string;
  model: string | null;
}
const USERS = ['pu1', 'pu2', 'pu3'];
const ORG_OF: Record<string, string | null> = { pu1: 'porg', pu2: 'porg', pu3: null };
const MODELS = ['m1', 'm2'];
const BUDGETS: BudgetSpec[] = [
  { userId: 'pu1', orgId: null, period: 'day', tz: 'America/New_York', model: null },
  { userId: null, orgId: 'porg', period: 'week', tz: 'Europe/Berlin', model: null },
  { userId: 'pu2', orgId: null, period: 'month', tz: 'Australia/Sydney', model: 'm1' },
  { userId: null, orgId: 'porg', period: 'day', tz: 'UTC', model: 'm2' },
  { userId: 'pu3', orgId: null, period: 'week', tz: 'America/Los_Angeles', model: null },
];
// Instants just before DST changes and calendar boundaries.
const STARTS = [
  '2026-03-08T03:00:00Z', // US spring forward 07:00Z
  '2026-03-28T20:00:00Z', // EU spring forward 2026-03-29 01:00Z
  '2026-04-04T12:00:00Z', // Sydney fall back 2026-04-05
  '2026-10-03T12:00:00Z', // Sydney spring forward 2026-10-04
  '2026-10-24T20:00:00Z', // EU fall back 2026-10-25 01:00Z
  '2026-10-31T20:00:00Z', // US fall back 2026-11-01, month boundary
  '2026-12-31T18:00:00Z', // year boundary
];

const M = 1_000_000n;

/** The calendar period containing `at` in `tz`, as a label, computed with Intl (independently of PostgreSQL). */
function periodKey(period: Period, tz: string, at: Date): string {
  const parts = new Intl.DateTimeFormat('en-CA', { timeZone: tz, year: 'numeric', month: '2-digit', day: '2-digit' }).formatToParts(at);
  const get = (type: string) => Number(parts.find((p) => p.type === type)!.value);
  const [y, m, d] = [get('year'), get('month'), get('day')];
  if (period === 'month') return `${y}-${m}`;
  if (period === 'day') return `${y}-${m}-${d}`;
  const date = new Date(Date.UTC(y, m - 1, d));
  date.setUTCDate(date.getUTCDate() - ((date.getUTCDay() + 6) % 7)); // back to Monday
  return `${date.getUTCFullYear()}-${date.getUTCMonth() + 1}-${date.getUTCDate()}`;
}
const localTime = (tz: string, at: Date) =>
  new Intl.DateTimeFormat('en-GB', { timeZone: tz, hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' }).format(at);

type Op =
  | { kind: 'open'; user: number; model: number; credits: number; advance: number }
  | { kind: 'settle'; pick: number; credits: number; advance: number }
  | { kind: 'charge'; user: number; model: number; credits: number; enforce: boolean; lateMinutes: number; advance: number }
  | { kind: 'extend'; pick: number; credits: number; advance: number }
  | { kind: 'refund'; pick: number; credits: number; advance: number };

const advance = fc.integer({ min: 0, max: 36 }).map((n) => n * 20); // minutes: 0 to 12 h
const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant('open' as const), user: fc.nat(2), model: fc.nat(1), credits: fc.integer({ min: 0, max: 8 }), advance }),
  fc.record({ kind: fc.constant('settle' as const), pick: fc.nat(), credits: fc.integer({ min: 0, max: 12 }), advance }),
  fc.record({
    kind: fc.constant('charge' as const),
    user: fc.nat(2),
    model: fc.nat(1),
    credits: fc.integer({ min: 0, max: 6 }),
    enforce: fc.boolean(),
    lateMinutes: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 3 * 24 * 60 })),
    advance,
  }),
  { arbitrary: fc.record({ kind: fc.constant('extend' as const), pick: fc.nat(), credits: fc.integer({ min: 1, max: 8 }), advance }), weight: 3 },
  { arbitrary: fc.record({ kind: fc.constant('refund' as const), pick: fc.nat(), credits: fc.integer({ min: 1, max: 6 }), advance }), weight: 2 },
);

interface Leg {
  budget: number;
  key: string;
  held: bigint;
  spent: bigint;
}

test('When random holds, extensions, settles, late settles, usage records and refunds run across period and DST boundaries, then decisions and counters match the model', async () => {
  await ctx.db.query(`INSERT INTO user_accounts (id, org_id) VALUES ('pu1', 'porg'), ('pu2', 'porg'), ('pu3', NULL) RETURNING 1`);
  let sessionSeq = 0;
  let recordSeq = 0;

  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom(...STARTS),
      fc.array(fc.integer({ min: 0, max: 40 }), { minLength: BUDGETS.length, maxLength: BUDGETS.length }),
      fc.array(opArb, { minLength: 5, maxLength: 40 }),
      async (start, limits, ops) => {
        await ctx.db.query(`DELETE FROM budgets RETURNING 1`);
        const ids: string[] = [];
        for (const [i, b] of BUDGETS.entries()) {
          const [row] = await ctx.db.query<{ id: string }>(
            `INSERT INTO budgets (user_id, org_id, period, limit_credits, model_id, timezone) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id::text`,
            [b.userId, b.orgId, b.period, (BigInt(limits[i]) * M).toString(), b.model, b.tz],
          );
          ids.push(row.id);
        }
        const limitOf = (i: number) => BigInt(limits[i]) * M;
        const counters = new Map<string, { spent: bigint; held: bigint }>(); // `${budget}|${key}`
        const counter = (i: number, key: string) => {
          const k = `${i}|${key}`;
          if (!counters.has(k)) counters.set(k, { spent: 0n, held: 0n });
          return counters.get(k)!;
        };
        const applicable = (user: string, model: string | null) =>
          BUDGETS.map((b, i) => ({ b, i })).filter(
            ({ b }) => (b.userId === user || (b.orgId !== null && b.orgId === ORG_OF[user])) && (b.model === null || b.model === model),
          );
        const refuses = (user: string, model: string | null, amount: bigint, at: Date) =>
          applicable(user, model).some(({ b, i }) => {
            const c = counter(i, periodKey(b.period, b.tz, at));
            return c.spent + c.held + amount > limitOf(i);
          });
        const sessions: Array<{ id: string; user: string; legs: Leg[]; settled: boolean }> = [];
        const records: Array<{ id: number; legs: Leg[] }> = [];
        let now = new Date(start);

        const attempt = async (work: (tx: Transaction) => Promise<void>): Promise<'ok' | 'refused'> => {
          try {
            await ctx.db.transaction(work);
            return 'ok';
          } catch (error) {
            if (pgErrorCode(error) === 'P0B01') return 'refused';
            throw error;
          }
        };

        for (const op of ops) {
          now = new Date(now.getTime() + op.advance * 60_000);
          const at = now.toISOString();
          if (op.kind === 'open') {
            const user = USERS[op.user];
            const model = MODELS[op.model];
            const amount = BigInt(op.credits) * M;
            const id = `ps-${++sessionSeq}`;
            const expected = refuses(user, model, amount, now) ? 'refused' : 'ok';
            const actual = await attempt(async (tx) => {
              await ctx.db.query(`SELECT acct_budget_lock($1, NULL, $2, $3::timestamptz)`, [user, model, at], tx);
              // The budget half of acct_session_open, at the chosen time: admit, then hold on what was admitted.
              await ctx.db.query(
                `SELECT acct_budget_hold($1, $2, $4::bigint, a.budget_ids, a.limits, a.period_starts)
                   FROM acct_budget_open_admit($1, $3, $4::bigint, $5::timestamptz) a`,
                [user, id, model, amount.toString(), at],
                tx,
              );
            });
            expect({ op, at, decision: actual }).toEqual({ op, at, decision: expected });
            if (actual === 'ok') {
              const legs = applicable(user, model).map(({ b, i }) => ({ budget: i, key: periodKey(b.period, b.tz, now), held: amount, spent: 0n }));
              for (const leg of legs) counter(leg.budget, leg.key).held += amount;
              sessions.push({ id, user, legs, settled: false });
            }
          } else if (op.kind === 'settle') {
            if (sessions.length === 0) continue;
            // Settling again is a late finalize correcting an earlier settle (the spend may go down).
            const s = sessions[op.pick % sessions.length];
            const spent = BigInt(op.credits) * M;
            await attempt(async (tx) => {
              await ctx.db.query(`SELECT acct_budget_lock_session($1, $2)`, [s.user, s.id], tx);
              await ctx.db.query(`SELECT acct_budget_settle($1, $2, $3::bigint)`, [s.user, s.id, spent.toString()], tx);
            });
            for (const leg of s.legs) {
              const c = counter(leg.budget, leg.key);
              c.held -= leg.held;
              c.spent += spent - leg.spent;
              leg.held = 0n;
              leg.spent = spent;
            }
            s.settled = true;
          } else if (op.kind === 'extend') {
            // A larger hold on an active session: decided and counted on the budgets (and in the periods) its
            // hold counts in, whatever the clock says now.
            const active = sessions.filter((x) => !x.settled);
            if (active.length === 0) continue;
            const s = active[op.pick % active.length];
            const amount = BigInt(op.credits) * M;
            const expected = s.legs.some((leg) => {
              const c = counter(leg.budget, leg.key);
              return c.spent + c.held + amount > limitOf(leg.budget);
            })
              ? 'refused'
              : 'ok';
            const actual = await attempt(async (tx) => {
              await ctx.db.query(`SELECT acct_budget_lock_session($1, $2)`, [s.user, s.id], tx);
              await ctx.db.query(`SELECT acct_budget_extend($1, $2, $3::bigint, false)`, [s.user, s.id, amount.toString()], tx);
              await ctx.db.query(`SELECT acct_budget_extend($1, $2, $3::bigint, true)`, [s.user, s.id, amount.toString()], tx);
            });
            expect({ op, at, decision: actual }).toEqual({ op, at, decision: expected });
            if (actual === 'ok') {
              for (const leg of s.legs) {
                leg.held += amount;
                counter(leg.budget, leg.key).held += amount;
              }
            }
          } else if (op.kind === 'refund') {
            // A refund takes the amount off the spend of every period the record counted in, never below 0.
            if (records.length === 0) continue;
            const r = records[op.pick % records.length];
            const amount = BigInt(op.credits) * M;
            await attempt(async (tx) => {
              await ctx.db.query(`SELECT acct_budget_lock_record($1::bigint)`, [r.id], tx);
              await ctx.db.query(`SELECT acct_budget_refund_record($1::bigint, $2::bigint)`, [r.id, amount.toString()], tx);
            });
            for (const leg of r.legs) {
              const back = leg.spent < amount ? leg.spent : amount;
              leg.spent -= back;
              counter(leg.budget, leg.key).spent -= back;
            }
          } else {
            const user = USERS[op.user];
            const model = MODELS[op.model];
            const amount = BigInt(op.credits) * M;
            const when = new Date(now.getTime() - op.lateMinutes * 60_000);
            const expected = op.enforce && refuses(user, model, amount, when) ? 'refused' : 'ok';
            const recordId = ++recordSeq;
            const actual = await attempt(async (tx) => {
              await ctx.db.query(`SELECT acct_budget_lock($1, NULL, $2, $3::timestamptz)`, [user, model, when.toISOString()], tx);
              await ctx.db.query(`SELECT acct_budget_charge($1, $2::bigint, $3, $4::bigint, $5::timestamptz, $6)`, [
                user,
                recordId,
                model,
                amount.toString(),
                when.toISOString(),
                op.enforce,
              ], tx);
            });
            expect({ op, at, decision: actual }).toEqual({ op, at, decision: expected });
            if (actual === 'ok') {
              const legs = applicable(user, model).map(({ b, i }) => ({ budget: i, key: periodKey(b.period, b.tz, when), held: 0n, spent: amount }));
              for (const leg of legs) counter(leg.budget, leg.key).spent += amount;
              records.push({ id: recordId, legs });
            }
          }
        }

        // Every counter row: a local midnight of its zone, labelled like the model's period, with the model's numbers.
        const rows = await ctx.db.query<{ budget_id: string; period_start: Date; spent: string; held: string }>(
          `SELECT budget_id::text, period_start, spent_credits::text AS spent, held_credits::text AS held FROM budget_counters`,
        );
        const actual = new Map<string, { spent: bigint; held: bigint }>();
        for (const row of rows) {
          const i = ids.indexOf(row.budget_id);
          const b = BUDGETS[i];
          expect({ budget: i, start: row.period_start, local: localTime(b.tz, row.period_start) }).toEqual({
            budget: i,
            start: row.period_start,
            local: '00:00:00',
          });
          actual.set(`${i}|${periodKey(b.period, b.tz, row.period_start)}`, { spent: BigInt(row.spent), held: BigInt(row.held) });
        }
        const expected = new Map([...counters].filter(([, c]) => c.spent !== 0n || c.held !== 0n));
        const nonZero = new Map([...actual].filter(([, c]) => c.spent !== 0n || c.held !== 0n));
        expect(nonZero).toEqual(expected);
        const problems = await ctx.db.query(`SELECT * FROM acct_budget_reconcile() WHERE kind <> 'budget_held_after_end'`);
        expect(problems).toEqual([]);
      },
    ),
    { numRuns: 25 },
  );
});
