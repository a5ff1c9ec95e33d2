import jwt from 'jsonwebtoken';
import request from 'supertest';
import { createTestContext, type TestContext } from '../support/context';
import { bearer, TEST_JWT_SECRET, tokenFor } from '../support/tokens';

// The JWT middleware remembers tokens it verified, by their exact string, until they expire
// (docs/performance.md). A remembered token must be refused at exactly the instant jsonwebtoken would
// refuse it, and any other string — the same claims with another signature included — is verified afresh.
let ctx: TestContext;
const TOLERANCE = 5;
beforeAll(async () => {
  ctx = await createTestContext({ JWT_CLOCK_TOLERANCE_SECONDS: String(TOLERANCE) });
});
afterAll(() => ctx.close());
afterEach(() => jest.restoreAllMocks());

const me = (token: string) => request(ctx.app).get('/api/me').set('Authorization', bearer(token));
const signed = (payload: object, secret = TEST_JWT_SECRET) => jwt.sign(payload, secret, { algorithm: 'HS256' });
const at = (ms: number) => jest.spyOn(Date, 'now').mockReturnValue(ms);

describe('verified-token cache', () => {
  test('When a remembered token reaches exp + the clock tolerance, then it is refused as expired, exactly like one never seen', async () => {
    const exp = Math.floor(Date.now() / 1000) + 60;
    const remembered = signed({ sub: 'cache-expiry-a', role: 'user', exp });
    const neverSeen = signed({ sub: 'cache-expiry-b', role: 'user', exp });
    expect((await me(remembered)).status).toBe(200); // now cached

    const lastMoment = (exp + TOLERANCE) * 1000 - 1;
    at(lastMoment);
    expect((await me(remembered)).status).toBe(200);

    at(lastMoment + 1);
    const cachedAnswer = await me(remembered);
    const freshAnswer = await me(neverSeen);

    expect(cachedAnswer.status).toBe(401);
    expect(cachedAnswer.body.error).toMatchObject({ code: 'UNAUTHENTICATED', message: 'Token has expired' });
    expect(freshAnswer.status).toBe(401);
    expect(freshAnswer.body.error.message).toBe(cachedAnswer.body.error.message);
    // And it stays refused once forgotten: the clock never goes back for it.
    expect((await me(remembered)).status).toBe(401);
  });

  test('When the same header and payload come with another signature, then it is refused although the genuine token is remembered', async () => {
    const payload = { sub: 'cache-signature', role: 'admin', exp: Math.floor(Date.now() / 1000) + 3600 };
    const genuine = signed(payload);
    const forged = signed(payload, 'another-secret-that-is-also-32-characters-long');
    const [header, body] = genuine.split('.');
    expect(forged.startsWith(`${header}.${body}.`)).toBe(true);
    expect((await me(genuine)).status).toBe(200);

    const res = await me(forged);
    const truncated = await me(`${header}.${body}.${genuine.split('.')[2].slice(0, -2)}`);

    expect(res.status).toBe(401);
    expect(res.body.error).toMatchObject({ code: 'UNAUTHENTICATED', message: 'Token is not valid' });
    expect(truncated.status).toBe(401);
    expect((await me(genuine)).body).toMatchObject({ userId: 'cache-signature', role: 'admin' });
  });

  test('When a refused token is sent again, then it is refused again (failures are not remembered)', async () => {
    const now = Math.floor(Date.now() / 1000);
    const notYet = signed({ sub: 'cache-nbf', role: 'user', nbf: now + 600, exp: now + 3600 });

    expect((await me(notYet)).status).toBe(401);
    expect((await me(notYet)).status).toBe(401);
    // Once its nbf has passed, the same string is accepted: it was never cached as refused.
    at((now + 600) * 1000);
    expect((await me(notYet)).status).toBe(200);
  });

  test('When two requests carry the same remembered token, then each gets the caller the token names', async () => {
    const token = tokenFor({ sub: 'cache-shared', role: 'supervisor', email: 'shared@example.com' });
    const first = await me(token);
    const second = await me(token);

    expect(first.body).toMatchObject({ userId: 'cache-shared', role: 'supervisor', email: 'shared@example.com' });
    expect(second.body).toEqual(first.body);
  });
});
