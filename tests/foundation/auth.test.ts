import request from 'supertest';
import { count } from '../support/db';
import { createTestContext, type TestContext } from '../support/context';
import { bearer, hostileTokens, tokenFor } from '../support/tokens';

let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext();
});
afterAll(() => ctx.close());

describe('authenticateJWT', () => {
  test('When the token is valid, then the route answers and the user is mirrored into user_accounts', async () => {
    const token = tokenFor({ sub: 'auth-alice', role: 'supervisor', email: 'alice@example.com', username: 'alice' });

    const res = await request(ctx.app).get('/api/me').set('Authorization', bearer(token));

    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ userId: 'auth-alice', role: 'supervisor', email: 'alice@example.com', username: 'alice' });
    const [row] = await ctx.db.query<{ role: string; email: string }>(`SELECT role, email FROM user_accounts WHERE id = 'auth-alice'`);
    expect(row).toEqual({ role: 'supervisor', email: 'alice@example.com' });
  });

  test('When the token changes the email, then the mirror follows it', async () => {
    await request(ctx.app).get('/api/me').set('Authorization', bearer(tokenFor({ sub: 'auth-bob', email: 'old@example.com' })));
    await request(ctx.app).get('/api/me').set('Authorization', bearer(tokenFor({ sub: 'auth-bob', email: 'new@example.com' })));
    const [row] = await ctx.db.query<{ email: string }>(`SELECT email FROM user_accounts WHERE id = 'auth-bob'`);
    expect(row.email).toBe('new@example.com');
  });

  test('When the role is omitted, then it defaults to user', async () => {
    const token = tokenFor({ sub: 'auth-carol', role: undefined as never, extra: { role: undefined } });
    const res = await request(ctx.app).get('/api/me').set('Authorization', bearer(token));
    expect(res.status).toBe(200);
    expect(res.body.role).toBe('user');
  });

  const failures: Array<[string, () => Record<string, string>]> = [
    ['no Authorization header', () => ({})],
    ['a Basic scheme', () => ({ Authorization: 'Basic YWxpY2U6cHc=' })],
    ['an empty bearer', () => ({ Authorization: 'Bearer ' })],
    ['garbage', () => ({ Authorization: 'Bearer not.a.jwt' })],
    ['an expired token', () => ({ Authorization: bearer(hostileTokens.expired()) })],
    ['a token signed with another secret', () => ({ Authorization: bearer(hostileTokens.wrongSecret()) })],
    ['a token without exp', () => ({ Authorization: bearer(hostileTokens.withoutExp()) })],
    ['a token without sub', () => ({ Authorization: bearer(hostileTokens.withoutSub()) })],
    ['a token with an unknown role', () => ({ Authorization: bearer(hostileTokens.unknownRole()) })],
    ['alg: none', () => ({ Authorization: bearer(hostileTokens.algNone()) })],
    ['a tampered payload', () => ({ Authorization: bearer(hostileTokens.tamperedPayload()) })],
    ['an RS256 token when HS256 is pinned', () => ({ Authorization: bearer(hostileTokens.rs256()) })],
  ];

  test.each(failures)('When the request has %s, then it gets 401 UNAUTHENTICATED and no user is created', async (_name, headers) => {
    const usersBefore = await count(ctx.db, 'user_accounts');

    const res = await request(ctx.app).get('/api/me').set(headers());

    expect(res.status).toBe(401);
    expect(res.body.error.code).toBe('UNAUTHENTICATED');
    expect(typeof res.body.error.message).toBe('string');
    expect(res.body.error.requestId).toEqual(expect.any(String));
    expect(await count(ctx.db, 'user_accounts')).toBe(usersBefore);
  });
});

describe('issuer and audience', () => {
  let strict: TestContext;
  beforeAll(async () => {
    strict = await createTestContext({ JWT_ISSUER: 'auth.example', JWT_AUDIENCE: 'accounting' });
  });
  afterAll(() => strict.close());

  test('When issuer and audience are configured, then tokens must carry both', async () => {
    const good = tokenFor({ extra: { iss: 'auth.example', aud: 'accounting' } });
    const wrongIssuer = tokenFor({ extra: { iss: 'evil.example', aud: 'accounting' } });
    const wrongAudience = tokenFor({ extra: { iss: 'auth.example', aud: 'billing' } });

    expect((await request(strict.app).get('/api/me').set('Authorization', bearer(good))).status).toBe(200);
    expect((await request(strict.app).get('/api/me').set('Authorization', bearer(wrongIssuer))).status).toBe(401);
    expect((await request(strict.app).get('/api/me').set('Authorization', bearer(wrongAudience))).status).toBe(401);
    expect((await request(strict.app).get('/api/me').set('Authorization', bearer(tokenFor()))).status).toBe(401);
  });
});
