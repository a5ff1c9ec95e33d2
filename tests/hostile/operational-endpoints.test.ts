import request from 'supertest';
import { loadConfig } from '../../src/config';
import { createTestContext, type TestContext } from '../support/context';
import { TEST_JWT_SECRET } from '../support/tokens';

/**
 * Issue 12, item 7: /metrics is not public by accident in production, and neither /ready nor the metrics
 * gauges can be used to drain the pool: their database reads are shared for about a second.
 */
let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext();
});
afterAll(() => ctx.close());

const production = { NODE_ENV: 'production', DATABASE_URL: 'postgres://x@127.0.0.1/db', JWT_SECRET: TEST_JWT_SECRET };

test('When production has no METRICS_TOKEN and METRICS_PUBLIC is not true, then the service refuses to start, naming the setting', () => {
  expect(() => loadConfig(production)).toThrow(/METRICS_TOKEN is required in production \(or set METRICS_PUBLIC=true/);
  expect(loadConfig({ ...production, METRICS_PUBLIC: 'true' }).METRICS_PUBLIC).toBe(true);
  expect(loadConfig({ ...production, METRICS_TOKEN: 'a-long-random-scrape-token' }).METRICS_TOKEN).toBe('a-long-random-scrape-token');
  expect(loadConfig({ ...production, METRICS_ENABLED: 'false' }).METRICS_ENABLED).toBe(false);
});

/** Counts the statements the app sends while `work` runs (the real database answers them all). */
async function statementsDuring(work: () => Promise<unknown>): Promise<number> {
  const original = ctx.db.query;
  let n = 0;
  ctx.db.query = ((...args: Parameters<typeof original>) => {
    n++;
    return original(...args);
  }) as typeof original;
  try {
    await work();
  } finally {
    ctx.db.query = original;
  }
  return n;
}

test('When /ready is flooded, then the probes share one database check', async () => {
  await request(ctx.app).get('/ready').expect(200); // migrations checked once, then cached for good
  await new Promise((r) => setTimeout(r, 1100)); // let the one-second cache lapse
  const n = await statementsDuring(async () => {
    const answers = await Promise.all(Array.from({ length: 50 }, () => request(ctx.app).get('/ready')));
    expect(answers.every((a) => a.status === 200)).toBe(true);
  });
  // Uncached, that is 50 checks. A slow machine may let the burst span a second or two: each second costs one.
  expect(n).toBeLessThanOrEqual(3);
});

test('When /metrics is scraped many times at once, then the active-sessions gauge is read from the database once', async () => {
  await new Promise((r) => setTimeout(r, 1100));
  const n = await statementsDuring(async () => {
    const answers = await Promise.all(Array.from({ length: 30 }, () => request(ctx.app).get('/metrics')));
    expect(answers.every((a) => a.status === 200 && a.text.includes('accounting_sessions_active'))).toBe(true);
  });
  expect(n).toBeLessThanOrEqual(3); // uncached: 30
});
