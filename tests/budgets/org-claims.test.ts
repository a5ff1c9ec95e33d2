import request from 'supertest';
import { createApp } from '../../src/app';
import { databaseOptionsFrom } from '../../src/config/sequelize';
import { createDatabase, type Database } from '../../src/db/database';
import { createLogger } from '../../src/lib/logger';
import { createTestContext, type TestContext } from '../support/context';
import { count, grantDirect } from '../support/db';
import { bearer, tokenFor, userWithRole } from '../support/tokens';
import { addTestModel, ledgerProblems, reconcile, TEST_MODEL } from '../sessions/support';
import { budgetProblems } from './support';

/**
 * The org that decides a caller's budgets, with the user cache on as in production (the other tests run
 * with USER_CACHE_TTL_MS=0). The second audit found that a process skipped the mirror for claims it had
 * mirrored before, so the stored org (another token's, a supervisor's PUT, another instance's write)
 * decided the budgets instead of the token's: API.md says the token wins when it carries an org.
 */
let ctx: TestContext;
let secondDb: Database;
let second: ReturnType<typeof createApp>; // another instance on the same database
const supervisor = userWithRole('supervisor');

beforeAll(async () => {
  ctx = await createTestContext({ USER_CACHE_TTL_MS: '600000' });
  await addTestModel(ctx.db);
  secondDb = createDatabase(databaseOptionsFrom(ctx.config, ctx.databaseUrl));
  second = createApp({ config: ctx.config, db: secondDb, logger: createLogger('silent') });
});
afterEach(async () => {
  expect(await reconcile(ctx.app)).toMatchObject({ ok: true, discrepancies: [] });
  expect(await ledgerProblems(ctx.db)).toEqual([]);
  expect(await budgetProblems(ctx.db)).toEqual([]);
});
afterAll(async () => {
  await secondDb.close();
  await ctx.close();
});

const post = (app: unknown, path: string, auth: string, body: object) =>
  request(app as Parameters<typeof request>[0]).post(path).set('Authorization', auth).send(body);
const initialize = (auth: string, body: object, app: unknown = ctx.app) =>
  post(app, '/api/streaming-sessions/initialize', auth, { modelId: TEST_MODEL, ...body });
const record = (auth: string) => post(ctx.app, '/api/usage/record', auth, { service: 'chat', operation: 'completion', credits: 2 });
const me = (auth: string) => request(ctx.app).get('/api/me').set('Authorization', auth);

/** A user with 100 credits whose token names `org`, and an org budget of 1 credit a day. */
async function orgMember(name: string) {
  const org = `${name}-${Date.now()}`;
  expect((await post(ctx.app, '/api/budgets', supervisor.auth, { scope: { orgId: org }, period: 'day', limitCredits: 1 })).status).toBe(201);
  const id = `${name}-user-${Date.now()}`;
  await grantDirect(ctx.db, id, 100);
  return { id, org, auth: bearer(tokenFor({ sub: id, extra: { org } })), otherOrg: bearer(tokenFor({ sub: id, extra: { org: `${org}-other` } })) };
}

describe('The token\u2019s org decides the budgets, with the user cache on', () => {
  test('When one user\u2019s token names org A, then org B, then A again, then A\u2019s budget applies again', async () => {
    const user = await orgMember('aba');
    expect((await me(user.auth)).body.orgId).toBe(user.org); // mirrored, and remembered by this process
    expect((await initialize(user.otherOrg, { estimatedCredits: 2 })).status).toBe(201);
    const again = await initialize(user.auth, { estimatedCredits: 2 });
    expect(again.status).toBe(402);
    expect(again.body.error.code).toBe('BUDGET_EXCEEDED');
    expect((await record(user.auth)).status).toBe(402);
    expect((await post(ctx.app, '/api/credits/check', user.auth, { credits: 2 })).body.sufficient).toBe(false);
    expect((await me(user.auth)).body.orgId).toBe(user.org);
    expect(await count(ctx.db, 'streaming_sessions', 'user_id = $1', [user.id])).toBe(1);
    expect(await count(ctx.db, 'usage_records', 'user_id = $1', [user.id])).toBe(0);
  });

  test('When another instance mirrors the user with another org in between, then A\u2019s budget still applies here', async () => {
    const user = await orgMember('instances');
    expect((await me(user.auth)).body.orgId).toBe(user.org);
    expect((await initialize(user.otherOrg, { estimatedCredits: 2 }, second.app)).status).toBe(201);
    expect((await initialize(user.auth, { estimatedCredits: 2 })).status).toBe(402);
    expect((await record(user.auth)).status).toBe(402);
  });

  test('When a supervisor clears the org of a user whose token names one, then the token\u2019s org still decides the budgets', async () => {
    const user = await orgMember('put');
    expect((await me(user.auth)).body.orgId).toBe(user.org);
    const put = await request(ctx.app).put(`/api/users/${user.id}/org`).set('Authorization', supervisor.auth).send({ orgId: null });
    expect(put.status).toBe(200);
    expect((await initialize(user.auth, { estimatedCredits: 2 })).status).toBe(402);
    expect((await record(user.auth)).status).toBe(402);
    expect(await count(ctx.db, 'user_accounts', 'id = $1 AND org_id = $2', [user.id, user.org])).toBe(1);
  });

  test('When a token without an org follows, then the stored org decides (nothing is mirrored over it)', async () => {
    const user = await orgMember('plain');
    expect((await me(user.auth)).body.orgId).toBe(user.org);
    const plain = bearer(tokenFor({ sub: user.id }));
    expect((await initialize(plain, { estimatedCredits: 2 })).status).toBe(402);
    expect((await me(plain)).body.orgId).toBe(user.org);
  });

  test('When a token\u2019s claims go back to ones seen before, then they are mirrored again (/api/me shows the token\u2019s role)', async () => {
    const id = `role-aba-${Date.now()}`;
    const asUser = bearer(tokenFor({ sub: id, role: 'user' }));
    const asAdmin = bearer(tokenFor({ sub: id, role: 'admin' }));
    expect((await me(asUser)).body.role).toBe('user');
    expect((await me(asAdmin)).body.role).toBe('admin');
    expect((await me(asUser)).body.role).toBe('user');
    expect(await count(ctx.db, 'user_accounts', 'id = $1 AND role = $2', [id, 'user'])).toBe(1);
  });
});
