import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import request from 'supertest';
import { createApp, type App } from '../../src/app';
import { loadConfig } from '../../src/config';
import { createLogger } from '../../src/lib/logger';
import { createTestContext, type TestContext } from '../support/context';
import { allEventsVisible, availableOf, count, micro } from '../support/db';
import { TEST_JWT_SECRET, userWithRole } from '../support/tokens';
import { Receiver } from '../events/receiver';
import { ROOT, ensureConsoleBuilt } from './support';

/**
 * The console end to end: Debian's chromium (driven by playwright-core) against the app listening on an
 * ephemeral port, on this file's own test database. CI installs chromium (.ci/run); without it this file
 * fails loudly instead of skipping.
 */
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
// A browser on a shared 2-core machine: generous limits (these are waits, not timing assertions).
jest.setTimeout(180_000);
const SHOTS = path.join(ROOT, '.artifacts', 'console-screenshots');
const AXE_SOURCE = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

let ctx: TestContext;
let devApp: App;
const servers: http.Server[] = [];
let baseUrl: string;
let devUrl: string;
let browser: Browser;
let context: BrowserContext;
let page: Page;
/** console errors and uncaught page errors, with the URL they came from. */
const browserErrors: { text: string; url: string }[] = [];
/** Every URL the pages requested: all must be the service's own (no CDN, works offline). */
const requested = new Set<string>();

const admin = userWithRole('admin');
const newUser = `new-${crypto.randomUUID()}`;
const newUserAuth = userWithRole('user', newUser).auth;
const sessionId = `console-e2e-${crypto.randomUUID()}`;
let modelId: string;
/** What the finalized session cost (set by the finalize test, refunded by the refund test). */
let used = '';
/** A real webhook receiver on loopback (the endpoint the webhooks test creates). */
const receiver = new Receiver();
/** Pastes the local wall time of `ms` in the browser's zone (Asia/Tokyo, UTC+9, no DST) into a datetime-local input. */
const tokyoLocal = (ms: number) => new Date(ms + 9 * 3_600_000).toISOString().slice(0, 16);

async function listen(app: App['app']): Promise<string> {
  const server = http.createServer(app);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function watch(p: Page): void {
  p.on('request', (r) => requested.add(r.url()));
  p.on('console', (message) => {
    if (message.type() === 'error') browserErrors.push({ text: message.text(), url: message.location().url });
  });
  p.on('pageerror', (error) => browserErrors.push({ text: `uncaught: ${error.message}`, url: p.url() }));
}

async function shot(name: string, p: Page = page): Promise<void> {
  await p.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

/** axe-core in the page (evaluated over the DevTools protocol, so the page's CSP stays enforced). */
async function seriousViolations(p: Page = page): Promise<string[]> {
  await p.evaluate(AXE_SOURCE);
  const violations = await p.evaluate<{ id: string; impact: string; help: string; nodes: { target: string[] }[] }[]>(
    "axe.run(document, { resultTypes: ['violations'] }).then((r) => r.violations)",
  );
  return violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.impact} ${v.id}: ${v.help} at ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
}

/** Reads `read` until `done` accepts it (the page loads in steps), at most 100 times; returns the last value. */
async function settle<T>(read: () => Promise<T>, done: (value: T) => boolean): Promise<T> {
  let value = await read();
  for (let i = 0; i < 100 && !done(value); i++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    value = await read();
  }
  return value;
}

const heading = (p: Page = page) => p.locator('h1');
const chartTotal = (section: string) => page.locator('section', { has: page.getByRole('heading', { name: section, exact: true }) }).getByTestId('chart-total');

beforeAll(async () => {
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(`Chromium is not installed at ${CHROMIUM}: apt-get install -y chromium (or set CHROMIUM_PATH). The console's end-to-end test needs it.`);
  }
  ensureConsoleBuilt();
  fs.mkdirSync(SHOTS, { recursive: true });
  // Webhooks to the loopback receiver are allowed; the test drives the dispatcher itself (no background loop).
  ctx = await createTestContext({ WEBHOOK_ALLOW_PRIVATE: 'true' });
  await receiver.start();
  baseUrl = await listen(ctx.app);
  // The same database, served as in local embedded development (the only mode with the development sign-in).
  const devConfig = loadConfig({ NODE_ENV: 'development', JWT_SECRET: TEST_JWT_SECRET, LOG_LEVEL: 'silent', SWEEPER_INTERVAL_MS: '0', RATE_LIMIT_ENABLED: 'false' });
  devApp = createApp({ config: devConfig, db: ctx.db, logger: createLogger('silent') });
  devUrl = await listen(devApp.app);

  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
  });
  // A zone far from UTC, so local times and their UTC titles differ.
  context = await browser.newContext({ viewport: { width: 1280, height: 800 }, timezoneId: 'Asia/Tokyo', locale: 'en-GB' });
  context.setDefaultTimeout(60_000);
  page = await context.newPage();
  watch(page);

  const models = await request(ctx.app).get('/api/models').set('Authorization', admin.auth);
  modelId = models.body[0].modelId;
}, 240_000);

afterAll(async () => {
  await browser?.close();
  await Promise.all(
    servers.map((s) => {
      s.closeAllConnections();
      return new Promise((resolve) => s.close(resolve));
    }),
  );
  await devApp?.close();
  await receiver.stop();
  await ctx?.services.dispatcher.close();
  await ctx?.close();
});

test('When an admin pastes a token, then the overview shows system totals, sessions by status, the chart and reconcile; the token stays out of the URL', async () => {
  await page.goto(`${baseUrl}/admin`);
  await expect(heading().textContent()).resolves.toBe('Sign in');
  expect(await page.getByRole('button', { name: 'Development sign-in' }).count()).toBe(0);
  await page.getByLabel('Bearer token').fill(admin.auth); // pasted with its "Bearer " prefix
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Overview', level: 1 }).waitFor();

  await page.getByRole('heading', { name: 'Sessions by status' }).waitFor();
  await chartTotal('Daily credits by model').waitFor();
  expect(await chartTotal('Daily credits by model').textContent()).toBe('0');
  await page.getByRole('button', { name: 'Run reconcile' }).click();
  await page.getByText(/^Balanced/).waitFor();

  expect(page.url()).not.toContain(admin.auth.slice(7, 40));
  expect(await page.evaluate("Object.values(sessionStorage).some((v) => v.startsWith('eyJ'))")).toBe(true);
  expect(await page.evaluate('localStorage.length')).toBe(0);
  // Times: the viewer's zone, UTC on hover.
  const title = await page.locator('time').first().getAttribute('title');
  expect(title).toMatch(/ UTC$/);
  await shot('overview');
  expect(await seriousViolations()).toEqual([]);
});

test('When an admin allocates to a user never seen before, then the page shows the new balance and the grant is in the database once', async () => {
  await page.getByRole('link', { name: 'Users' }).click();
  await page.getByRole('heading', { name: 'Users', level: 1 }).waitFor();
  await page.getByLabel('User id').fill(newUser);
  await page.getByRole('button', { name: 'Open' }).click();
  await page.getByText('This user has never been seen by the service').waitFor();
  await expect(page.getByRole('alert').first().textContent()).resolves.toContain('NOT_FOUND');

  await page.getByLabel('Credits', { exact: true }).fill('12.5');
  await page.getByLabel('After a number of days').check();
  await page.getByLabel('Expires in days').fill('30');
  await page.getByLabel('Note (optional)').fill('console e2e');
  await page.getByRole('button', { name: 'Allocate' }).click();
  await expect(page.getByTestId('allocate-result').textContent()).resolves.toContain('New balance: 12.5 available');
  const balance = page.getByRole('definition').first();
  await page.getByRole('heading', { name: 'Lots' }).waitFor();
  expect(await balance.textContent()).toBe('12.5');

  expect(await count(ctx.db, 'credit_allocations', "user_id = $1 AND total_credits = 12500000 AND note = 'console e2e' AND expires_at > now() + interval '29 days'", [newUser])).toBe(1);
  // The write carried an Idempotency-Key (the service keeps one row per key and caller).
  expect(await count(ctx.db, 'idempotency_keys', 'caller_id = $1', [admin.id])).toBe(1);
  await shot('user-after-allocate');
  expect(await seriousViolations()).toEqual([]);
});

test('When the API answers an error, then the page shows its code, message and problems', async () => {
  await page.getByLabel('Credits', { exact: true }).fill('0');
  await page.getByRole('button', { name: 'Allocate' }).click();
  const alert = page.locator('form .error');
  await alert.waitFor();
  const text = await alert.textContent();
  expect(text).toContain('400 VALIDATION_ERROR');
  expect(text).toContain('credits: must be greater than 0');
  expect(await count(ctx.db, 'credit_allocations', 'user_id = $1', [newUser])).toBe(1);
});

test('When a session is opened through the API, then it is listed on the user page and on the sessions page', async () => {
  const opened = await request(ctx.app)
    .post('/api/streaming-sessions/initialize')
    .set('Authorization', newUserAuth)
    .send({ sessionId, modelId, estimatedInputTokens: 1000, estimatedOutputTokens: 500 });
  expect(opened.status).toBe(201);

  await page.reload();
  const sessions = page.getByRole('table', { name: "This user's active streaming sessions" });
  await sessions.getByText(sessionId).waitFor();
  await expect(chartTotal('Usage by day and model').textContent()).resolves.toBe('0');

  await page.getByRole('link', { name: 'Sessions' }).click();
  await page.getByRole('heading', { name: 'Active sessions', level: 1 }).waitFor();
  await page.getByRole('table').getByText(sessionId).waitFor();
  await shot('sessions');
  expect(await seriousViolations()).toEqual([]);
});

test('When the session is finalized, then the usage charts of the user and of the overview show its credits', async () => {
  const finalized = await request(ctx.app)
    .post('/api/streaming-sessions/finalize')
    .set('Authorization', newUserAuth)
    .send({ sessionId, actualInputTokens: 800, actualOutputTokens: 300 });
  expect(finalized.status).toBe(200);
  used = String(finalized.body.usedCredits);
  expect(Number(used)).toBeGreaterThan(0);

  await page.goto(`${baseUrl}/admin#/users/${encodeURIComponent(newUser)}`);
  await page.getByRole('heading', { name: 'Usage by day and model' }).waitFor();
  expect(await settle(() => chartTotal('Usage by day and model').textContent(), (v) => v === used)).toBe(used);
  // The chart's table (opened) has the model's column.
  await page.getByText('Table of the chart\u2019s data').first().click();
  const table = page.getByRole('table', { name: 'Credits used (credits per UTC day)' });
  expect(await table.getByRole('columnheader', { name: modelId }).count()).toBe(1);
  await page.getByRole('table', { name: 'Usage records, newest first' }).getByText(sessionId).waitFor();
  expect(await page.getByRole('table', { name: "This user's active streaming sessions" }).getByText(sessionId).count()).toBe(0);
  await shot('user-after-finalize');

  await page.getByRole('link', { name: 'Overview' }).click();
  expect(await settle(() => chartTotal('Daily credits by model').textContent(), (v) => v === used)).toBe(used);
  await shot('overview-after-finalize');
  expect(await seriousViolations()).toEqual([]);
});

const section = (title: string) => page.locator('section', { has: page.getByRole('heading', { name: title, exact: true, level: 2 }) });

test('When an admin refunds the usage record from the user page, then the record and the balance show it and the credits are back in the lot', async () => {
  const [record] = await ctx.db.query<{ id: string }>(`SELECT id::text FROM usage_records WHERE user_id = $1`, [newUser]);
  await page.goto(`${baseUrl}/admin#/users/${encodeURIComponent(newUser)}`);
  await page.getByRole('button', { name: `Refund record ${record.id}` }).click();
  // The prefill lands a render or two after the click (state, then the form's effect): wait for it.
  expect(await settle(() => page.getByLabel('Usage record id').inputValue(), (v) => v === record.id)).toBe(record.id);
  // Picking a record moves focus to the form.
  expect(await page.evaluate('document.activeElement?.id')).toBe('refund-record');
  await section('Refund a usage record').getByLabel('Reason').fill('console e2e refund');
  await page.getByRole('button', { name: 'Refund', exact: true }).click();
  const result = await page.getByTestId('refund-result').textContent();
  expect(result).toContain(`${used} refunded in all`);
  expect(await page.getByTestId('refund-balance').textContent()).toBe('New balance: 12.5 available, 0 reserved, 0 unpaid.');
  await page.getByRole('table', { name: 'Usage records, newest first' }).getByRole('row').filter({ hasText: record.id }).getByText(used).first().waitFor();

  expect(await count(ctx.db, 'usage_records', 'id = $1 AND refunded_credits = $2', [record.id, micro(used).toString()])).toBe(1);
  expect(await count(ctx.db, 'credit_transactions', "user_id = $1 AND type = 'refund' AND actor_id = $2", [newUser, admin.id])).toBe(1);
  expect(await availableOf(ctx.db, newUser)).toBe(micro('12.5'));
  await shot('user-after-refund');
});

test('When an admin adjusts too much, then the API\u2019s 402 is shown and nothing moves; a valid negative adjustment shows the new balance', async () => {
  const adjust = section('Adjust credits');
  await page.getByLabel('Adjustment (credits)').fill('-1000');
  await adjust.getByLabel('Reason').fill('console e2e adjust');
  await page.getByRole('button', { name: 'Adjust', exact: true }).click();
  await expect(adjust.locator('.error').textContent()).resolves.toContain('402 INSUFFICIENT_CREDITS');
  expect(await availableOf(ctx.db, newUser)).toBe(micro('12.5'));

  await page.getByLabel('Adjustment (credits)').fill('-2.5');
  await page.getByRole('button', { name: 'Adjust', exact: true }).click();
  expect(await page.getByTestId('adjust-balance').textContent()).toBe('New balance: 10 available, 0 reserved, 0 unpaid.');
  expect(await settle(() => page.getByRole('definition').first().textContent(), (v) => v === '10')).toBe('10');
  expect(await count(ctx.db, 'credit_transactions', "user_id = $1 AND type = 'adjust' AND abs(amount) = 2500000 AND actor_id = $2 AND note = 'console e2e adjust'", [newUser, admin.id])).toBe(1);
  expect(await availableOf(ctx.db, newUser)).toBe(micro('10'));
});

test('When an admin revokes part of a lot picked from the lots table, then the page shows what was revoked and the new balance', async () => {
  const [lot] = await ctx.db.query<{ id: string }>(`SELECT id::text FROM credit_allocations WHERE user_id = $1 ORDER BY remaining_credits DESC LIMIT 1`, [newUser]);
  await page.getByRole('button', { name: `Revoke lot ${lot.id}` }).click();
  expect(await settle(() => page.getByLabel('Lot id').inputValue(), (v) => v === lot.id)).toBe(lot.id);
  await page.getByLabel('Credits to revoke (optional; default: all that is left)').fill('4');
  await section('Revoke a lot').getByLabel('Reason').fill('console e2e revoke');
  await page.getByRole('button', { name: 'Revoke', exact: true }).click();
  expect(await page.getByTestId('revoke-result').textContent()).toContain(`Revoked 4 of lot ${lot.id}`);
  expect(await page.getByTestId('revoke-balance').textContent()).toBe('New balance: 6 available, 0 reserved, 0 unpaid.');
  expect(await count(ctx.db, 'credit_allocations', 'id = $1 AND remaining_credits = 6000000', [lot.id])).toBe(1);
  expect(await count(ctx.db, 'credit_transactions', "user_id = $1 AND type = 'revoke' AND actor_id = $2", [newUser, admin.id])).toBe(1);
  // Every write carried its own Idempotency-Key: allocate, the refused and the accepted adjustment, refund, revoke.
  expect(await count(ctx.db, 'idempotency_keys', 'caller_id = $1', [admin.id])).toBeGreaterThanOrEqual(4);
  // The ledger still balances after the corrections.
  const reconcile = await request(ctx.app).get('/api/admin/reconcile').set('Authorization', admin.auth);
  expect(reconcile.body).toMatchObject({ ok: true, discrepancies: [] });
  await shot('user-after-corrections');
  expect(await seriousViolations()).toEqual([]);
});

test('When an admin creates a recurring grant and stops it, then the list shows both and the database has the schedule, stopped', async () => {
  const grants = section('Recurring grants');
  await page.getByLabel('Credits per period').fill('5');
  await page.locator('#schedule-period').selectOption('week');
  await page.getByLabel('Time zone (IANA)').fill('Europe/Berlin');
  await page.getByRole('button', { name: 'Create recurring grant' }).click();
  await expect(page.getByTestId('schedule-result').textContent()).resolves.toMatch(/created: 5 per week\.$/);
  const [schedule] = await ctx.db.query<{ id: string }>(
    `SELECT id::text FROM credit_schedules WHERE user_id = $1 AND credits = 5000000 AND period = 'week' AND timezone = 'Europe/Berlin' AND created_by = $2`,
    [newUser, admin.id],
  );
  expect(schedule).toBeDefined();
  const row = grants.getByRole('row').filter({ hasText: schedule.id });
  await row.getByText('week (Europe/Berlin)').waitFor();
  page.once('dialog', (dialog) => void dialog.accept());
  await page.getByRole('button', { name: `Stop schedule ${schedule.id}` }).click();
  await row.locator('time').nth(1).waitFor(); // the "Stopped" column now has the time
  expect(await count(ctx.db, 'credit_schedules', 'id = $1 AND deleted_at IS NOT NULL', [schedule.id])).toBe(1);
  // Creating a schedule grants nothing by itself (the background job does, per period).
  expect(await availableOf(ctx.db, newUser)).toBe(micro('6'));
});

test('When an admin creates a budget and changes its limit, then the list and the status show it and the database has it', async () => {
  await page.getByRole('link', { name: 'Budgets' }).click();
  await page.getByRole('heading', { name: 'Budgets', level: 1 }).waitFor();
  await section('New budget').getByLabel('User id').fill(newUser);
  await page.getByLabel('Period', { exact: true }).selectOption('day');
  await page.getByLabel('Limit (credits per period)').fill('50');
  await page.getByRole('button', { name: 'Create budget' }).click();
  const created = await page.getByTestId('budget-result').textContent();
  expect(created).toContain(`50 per day for user ${newUser}`);
  const [budget] = await ctx.db.query<{ id: string }>(`SELECT id::text FROM budgets WHERE user_id = $1 AND limit_credits = 50000000`, [newUser]);
  expect(budget).toBeDefined();

  await page.locator('#budget-filter-kind').selectOption('userId');
  await section('Budgets').getByLabel('User id').fill(newUser);
  await page.getByRole('button', { name: 'Show', exact: true }).click();
  const status = page.getByRole('table', { name: /^Budgets that apply to user/ });
  await status.getByRole('row').filter({ hasText: budget.id }).waitFor();
  await page.getByRole('button', { name: `Change limit of budget ${budget.id}` }).click();
  await page.getByLabel('New limit (credits per period)').fill('75.000001');
  await page.getByRole('button', { name: 'Save limit' }).click();
  await status.getByRole('row').filter({ hasText: '75.000001' }).waitFor();
  expect(await count(ctx.db, 'budgets', 'id = $1 AND limit_credits = 75000001', [budget.id])).toBe(1);
  await shot('budgets');
  expect(await seriousViolations()).toEqual([]);

  // A second budget, deleted again (after a confirmation).
  await section('New budget').getByLabel('Limit (credits per period)').fill('1');
  await page.getByRole('button', { name: 'Create budget' }).click();
  await page.getByTestId('budget-result').filter({ hasText: '1 per day' }).waitFor();
  const [second] = await ctx.db.query<{ id: string }>(`SELECT id::text FROM budgets WHERE user_id = $1 AND limit_credits = 1000000`, [newUser]);
  page.once('dialog', (dialog) => void dialog.accept());
  await page.getByRole('button', { name: `Delete budget ${second.id}` }).click();
  await settle(() => page.getByRole('button', { name: `Delete budget ${second.id}` }).count(), (n) => n === 0);
  expect(await count(ctx.db, 'budgets', 'user_id = $1', [newUser])).toBe(1);
});

test('When an admin creates a webhook to a loopback receiver, then its secret shows once, a test and a real event arrive signed, and a retry delivers again', async () => {
  await page.getByRole('link', { name: 'Webhooks' }).click();
  await page.getByRole('heading', { name: 'Webhooks', level: 1 }).waitFor();
  await page.getByLabel('URL').fill(receiver.url);
  await page.getByLabel('Description (optional)').fill('console e2e');
  await page.getByRole('button', { name: 'Create endpoint' }).click();
  receiver.secret = (await page.getByTestId('webhook-secret').textContent())!;
  expect(receiver.secret).toMatch(/^whsec_/);
  await page.getByRole('table', { name: 'Webhook endpoints' }).getByRole('link', { name: receiver.url }).click();
  await page.getByRole('heading', { name: /^Webhook / , level: 1 }).waitFor();
  // The secret is not shown again.
  expect(await page.getByText(receiver.secret).count()).toBe(0);

  await page.getByRole('button', { name: 'Send a test event' }).click();
  expect(await page.getByTestId('webhook-test-result').textContent()).toMatch(/: succeeded, HTTP 204\.$/);
  expect(receiver.received.map((r) => r.body.type)).toEqual(['webhook.test']);

  // A real event: a grant to another user, fanned out and delivered by the dispatcher.
  const hookUser = `hook-${crypto.randomUUID()}`;
  expect((await request(ctx.app).post('/api/credits/allocate').set('Authorization', admin.auth).send({ userId: hookUser, credits: 1 })).status).toBe(201);
  await allEventsVisible(ctx.db);
  await ctx.services.dispatcher.runUntilIdle();
  const granted = receiver.received.find((r) => r.body.userId === hookUser);
  expect(granted?.body.type).toBe('credits.granted');
  expect(receiver.invalid).toBe(0);

  const deliveries = section('Deliveries');
  await deliveries.getByRole('button', { name: 'Refresh' }).click();
  const row = deliveries.getByRole('row').filter({ hasText: granted!.id }).first();
  await row.getByText('succeeded').waitFor();
  await row.getByText('1 attempt, last 204').click();
  await row.getByRole('table', { name: /^Attempts of delivery/ }).getByRole('cell', { name: '204', exact: true }).waitFor();
  const deliveryId = (await row.locator('td code').first().textContent())!;

  await page.getByRole('button', { name: `Retry delivery ${deliveryId}` }).click();
  await page.getByTestId('retry-result').waitFor();
  await ctx.services.dispatcher.runUntilIdle();
  expect(receiver.received.filter((r) => r.id === granted!.id)).toHaveLength(2);
  expect(await count(ctx.db, 'webhook_attempts', 'delivery_id = $1 AND success', [deliveryId])).toBe(2);
  await deliveries.getByRole('button', { name: 'Refresh' }).click();
  await row.getByText('2 attempts, last 204').waitFor();
  await shot('webhook');
  expect(await seriousViolations()).toEqual([]);
});

test('When an admin filters the event log by user and type, then the events of the flow are listed', async () => {
  await allEventsVisible(ctx.db);
  await page.getByRole('link', { name: 'Events' }).click();
  await page.getByRole('heading', { name: 'Events', level: 1 }).waitFor();
  const table = page.getByRole('table', { name: 'Events, oldest first' });
  // Unfiltered: the test event of the webhook test is there, with its endpoint in the data.
  await table.getByText('webhook.test', { exact: true }).waitFor();
  await page.getByLabel('User id').fill(newUser);
  await page.getByRole('button', { name: 'Filter' }).click();
  // Only this user's events (the webhook test event belongs to the admin).
  await settle(() => table.getByText('webhook.test', { exact: true }).count(), (n) => n === 0);
  const grant = table.getByRole('row').filter({ hasText: 'credits.granted' });
  await grant.getByRole('link', { name: newUser }).waitFor();
  expect(await grant.textContent()).toContain('12.5');
  await page.getByLabel('Type').selectOption('credits.granted');
  await page.getByRole('button', { name: 'Filter' }).click();
  expect(await settle(() => table.getByRole('row').count(), (n) => n === 2)).toBe(2); // the header and the one grant
  const [event] = await ctx.db.query<{ n: string }>(`SELECT count(*) AS n FROM events WHERE user_id = $1 AND type = 'credits.granted'`, [newUser]);
  expect(event.n).toBe('1');

  // Cursor paging: 11 grants to another user, 10 per page.
  const paged = `paged-${crypto.randomUUID()}`;
  for (let i = 1; i <= 11; i++) {
    expect((await request(ctx.app).post('/api/credits/allocate').set('Authorization', admin.auth).send({ userId: paged, credits: i })).status).toBe(201);
  }
  await allEventsVisible(ctx.db);
  const ids = (await ctx.db.query<{ eid: string }>(`SELECT 'evt_' || e.id AS eid FROM events e WHERE e.user_id = $1 ORDER BY e.id`, [paged])).map((r) => r.eid);
  expect(ids).toHaveLength(11);
  await page.getByLabel('Type').selectOption('');
  await page.getByLabel('User id').fill(paged);
  await page.getByLabel('Per page').selectOption('10');
  await page.getByRole('button', { name: 'Filter' }).click();
  await table.getByText(ids[9], { exact: true }).waitFor();
  expect(await table.getByText(ids[0], { exact: true }).count()).toBe(1);
  expect(await table.getByRole('row').count()).toBe(11);
  const pager = page.getByRole('navigation', { name: 'Events, oldest first: pages' });
  await pager.getByRole('button', { name: 'Next' }).click();
  await table.getByText(ids[10], { exact: true }).waitFor();
  expect(await table.getByRole('row').count()).toBe(2);
  expect(await pager.getByRole('button', { name: 'Next' }).isDisabled()).toBe(true);
  await pager.getByRole('button', { name: 'Previous' }).click();
  await table.getByText(ids[0], { exact: true }).waitFor();
  await shot('events');
  expect(await seriousViolations()).toEqual([]);
});

test('When an admin creates a price version, then the price list shows it and the database keeps the earlier one', async () => {
  const before = await count(ctx.db, 'model_prices', 'model_id = $1', [modelId]);
  await page.getByRole('link', { name: 'Prices' }).click();
  await page.getByRole('heading', { name: 'Prices', level: 1 }).waitFor();
  await page.getByLabel('Model id').fill(modelId);
  await page.getByLabel('Input, credits per 1M tokens', { exact: true }).fill('1.25');
  await page.getByLabel('Output, credits per 1M tokens').fill('5.000001');
  await page.getByRole('button', { name: 'Create version (effective now)' }).click();
  await expect(page.getByTestId('price-result').textContent()).resolves.toContain(`${modelId} is now at version ${before + 1}`);
  const row = page.getByRole('row').filter({ hasText: modelId }).first();
  expect(await settle(() => row.textContent(), (v) => !!v?.includes('5.000001'))).toContain('5.000001');
  expect(await count(ctx.db, 'model_prices', 'model_id = $1', [modelId])).toBe(before + 1);
  expect(await count(ctx.db, 'model_prices', 'model_id = $1 AND output_price_per_1m = 5000001', [modelId])).toBe(1);

  // A version that takes effect tomorrow: listed among the versions as scheduled, not in effect.
  await page.getByLabel('Input, credits per 1M tokens', { exact: true }).fill('2');
  await page.getByLabel('Output, credits per 1M tokens').fill('6');
  await page.getByLabel('Effective from (optional; your time zone; default: now)').fill(tokyoLocal(Date.now() + 86_400_000));
  await page.getByRole('button', { name: 'Create version (effective later)' }).click();
  // The result of the first version is still shown until this one's arrives.
  await page.getByTestId('price-result').filter({ hasText: `${modelId} gets version ${before + 2}, effective` }).waitFor();
  expect(await count(ctx.db, 'model_prices', "model_id = $1 AND effective_from > now() + interval '23 hours'", [modelId])).toBe(1);
  await page.getByLabel('Show versions of model').fill(modelId);
  await page.getByRole('button', { name: 'Show versions' }).click();
  const versions = page.getByRole('table', { name: `Price versions of ${modelId}, oldest first, credits per 1M tokens` });
  await versions.getByRole('row').filter({ hasText: 'scheduled' }).filter({ hasText: String(before + 2) }).waitFor();
  await versions.getByRole('row').filter({ hasText: 'in effect' }).filter({ hasText: '5.000001' }).waitFor();

  // A LiteLLM list: the dry run writes nothing, then Apply creates the one changed model's version.
  const list = { [modelId]: { input_cost_per_token: 0.000003, output_cost_per_token: 0.000015 }, 'image-only': { mode: 'image_generation' } };
  await page.getByLabel(/^Price list \(JSON/).fill(JSON.stringify(list));
  await page.getByRole('button', { name: 'Preview (dry run)' }).click();
  const preview = page.getByTestId('import-preview');
  await expect(preview.locator('p').first().textContent()).resolves.toBe('Dry run: 1 model would get a new version, 0 unchanged, 1 skipped. Nothing was written.');
  await preview.getByRole('row').filter({ hasText: modelId }).filter({ hasText: '0.000015' }).waitFor();
  expect(await count(ctx.db, 'model_prices', 'model_id = $1', [modelId])).toBe(before + 2);
  await shot('prices-import-preview');
  await page.getByRole('button', { name: 'Apply: create 1 version' }).click();
  await expect(page.getByTestId('import-result').textContent()).resolves.toContain(`${modelId} v${before + 3}`);
  expect(await count(ctx.db, 'model_prices', 'model_id = $1 AND input_price_per_1m = 300000000 AND output_price_per_1m = 1500000000', [modelId])).toBe(1);
  await shot('prices');
  expect(await seriousViolations()).toEqual([]);
});

test('When the window is narrow, then the pages reflow without sideways scrolling of the page itself', async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  for (const [hash, name] of [
    [`#/users/${encodeURIComponent(newUser)}`, 'user-narrow'],
    ['#/', 'overview-narrow'],
  ]) {
    await page.goto(`${baseUrl}/admin${hash}`);
    await page.getByRole('heading', { level: 1 }).waitFor();
    await page.getByTestId('chart-total').first().waitFor();
    expect(await page.evaluate('document.documentElement.scrollWidth <= window.innerWidth + 1')).toBe(true);
    await shot(name);
  }
  for (const [hash, name] of [
    ['#/budgets', 'budgets-narrow'],
    ['#/webhooks', 'webhooks-narrow'],
    ['#/events', 'events-narrow'],
  ]) {
    await page.goto(`${baseUrl}/admin${hash}`);
    await page.getByRole('heading', { level: 1 }).waitFor();
    await page.getByRole('table').first().getByRole('row').nth(1).waitFor();
    expect(await page.evaluate('document.documentElement.scrollWidth <= window.innerWidth + 1')).toBe(true);
    await shot(name);
  }
  expect(await seriousViolations()).toEqual([]);
  await page.setViewportSize({ width: 1280, height: 800 });
});

test('When a keyboard user tabs through the page, then the skip link comes first and the navigation works with Enter', async () => {
  await page.goto(`${baseUrl}/admin#/`);
  await page.reload();
  await page.getByRole('heading', { name: 'Overview', level: 1 }).waitFor();
  const focused = () => page.evaluate<string | undefined>('document.activeElement?.textContent');
  await page.keyboard.press('Tab');
  expect(await focused()).toBe('Skip to content');
  for (let i = 0; i < 10 && (await focused()) !== 'Users'; i++) await page.keyboard.press('Tab');
  expect(await focused()).toBe('Users');
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: 'Users', level: 1 }).waitFor();
  // Focus moved to the new page's heading (in an effect after the page rendered).
  const tag = () => page.evaluate<string | undefined>('document.activeElement?.tagName');
  expect(await settle(tag, (v) => v === 'H1')).toBe('H1');
});

test('When a supervisor signs in, then admin-only pages say so and the user page works without the admin-only parts', async () => {
  const supervisor = userWithRole('supervisor');
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByLabel('Bearer token').fill(supervisor.auth);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('button', { name: 'Sign out' }).waitFor();
  await page.getByRole('link', { name: 'Overview' }).click();
  await page.getByRole('heading', { name: 'Overview', level: 1 }).waitFor();
  expect(await page.getByRole('note').textContent()).toContain('This page needs the admin role');
  await page.goto(`${baseUrl}/admin#/users/${encodeURIComponent(newUser)}`);
  await page.getByRole('heading', { name: 'Ledger' }).waitFor();
  expect(await page.getByRole('heading', { name: 'Active sessions' }).count()).toBe(0);
  // Corrections and recurring grants are a supervisor's too.
  for (const title of ['Adjust credits', 'Revoke a lot', 'Refund a usage record', 'Recurring grants']) await page.getByRole('heading', { name: title }).waitFor();
  await shot('supervisor-user');
  for (const [name, notice] of [
    ['Webhooks', 'This page needs the admin role'],
    ['Events', 'This page needs the admin role'],
    ['Prices', 'importing a price list need the admin role'],
  ]) {
    await page.getByRole('link', { name, exact: true }).click();
    await page.getByRole('heading', { name, level: 1 }).waitFor();
    expect(await page.getByRole('note').textContent()).toContain(notice);
  }
  await page.getByRole('link', { name: 'Budgets' }).click();
  await page.getByRole('table', { name: 'Every budget' }).getByRole('row').nth(1).waitFor();
  expect(await seriousViolations()).toEqual([]);
});

test('When a token without the supervisor or admin role signs in, then the console refuses clearly and forgets the token', async () => {
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByLabel('Bearer token').fill(newUserAuth.slice('Bearer '.length));
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Access refused' }).waitFor();
  expect(await page.getByRole('alert').textContent()).toContain(`for ${newUser} with the role user`);
  expect(await page.evaluate("Object.keys(sessionStorage).filter((k) => k.endsWith('.token')).length")).toBe(0);
  await shot('refused');
  expect(await seriousViolations()).toEqual([]);
});

test('When the service runs in local embedded development mode, then one click signs in as the local admin', async () => {
  const devPage = await context.newPage();
  watch(devPage);
  await devPage.goto(`${devUrl}/admin`);
  await devPage.getByRole('button', { name: 'Development sign-in' }).click();
  await devPage.getByRole('heading', { name: 'Overview', level: 1 }).waitFor();
  expect(await devPage.locator('.who').textContent()).toContain('dev-admin');
  await shot('dev-sign-in', devPage);
  await devPage.close();
});

test('When the whole flow has run, then the browser logged no errors besides the network lines of the three API errors the flow provokes, and asked nothing of another origin', () => {
  // Chromium logs every 4xx fetch as "Failed to load resource"; these three are the unknown user, the refused allocation and the refused adjustment.
  const expected = [
    { status: 404, url: `/api/credits/balance/${encodeURIComponent(newUser)}` },
    { status: 400, url: '/api/credits/allocate' },
    { status: 402, url: '/api/credits/adjust' },
  ];
  const unexpected = browserErrors.filter((e) => !expected.some((x) => e.text.includes(`status of ${x.status}`) && e.url.endsWith(x.url)));
  expect(unexpected).toEqual([]);
  expect(requested.size).toBeGreaterThan(10);
  expect([...requested].filter((url) => !url.startsWith(`${baseUrl}/`) && !url.startsWith(`${devUrl}/`) && !url.startsWith('data:'))).toEqual([]);
});
