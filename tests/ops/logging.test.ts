import { Writable } from 'node:stream';
import request from 'supertest';
import { createApp } from '../../src/app';
import { createLogger } from '../../src/lib/logger';
import { createTestContext, type TestContext } from '../support/context';
import { hostileTokens, tokenFor } from '../support/tokens';

let ctx: TestContext;
let lines: string[];
let app: ReturnType<typeof createApp>['app'];

beforeAll(async () => {
  ctx = await createTestContext();
  lines = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      lines.push(...chunk.toString().split('\n').filter(Boolean));
      done();
    },
  });
  // Same app as production, with its JSON log lines captured.
  app = createApp({ config: ctx.config, db: ctx.db, logger: createLogger('debug', false, sink) }).app;
});
afterAll(() => ctx.close());
beforeEach(() => {
  lines.length = 0;
});

const entries = () => lines.map((line) => JSON.parse(line) as Record<string, unknown>);
/** The access-log entry of one request (the one carrying its request id). */
const entryFor = (requestId: string) => entries().find((e) => e.requestId === requestId && 'status' in e);

describe('request logs', () => {
  test('When an authenticated request is served, then one JSON line has request id, user id, route, status and duration', async () => {
    const token = tokenFor({ sub: 'log-alice' });

    const res = await request(app).get('/api/me').set('Authorization', `Bearer ${token}`).set('X-Request-Id', 'req-log-1');

    expect(res.status).toBe(200);
    expect(entryFor('req-log-1')).toEqual(
      expect.objectContaining({
        requestId: 'req-log-1',
        userId: 'log-alice',
        route: '/api/me',
        status: 200,
        durationMs: expect.any(Number),
        req: { method: 'GET', path: '/api/me' },
        service: 'accounting-service',
      }),
    );
  });

  test('When requests carry tokens (valid, expired, forged, in the query), then neither the token nor the Authorization header is logged', async () => {
    const tokens = [tokenFor({ sub: 'log-bob' }), hostileTokens.expired(), hostileTokens.tamperedPayload(), hostileTokens.algNone()];

    for (const token of tokens) await request(app).get('/api/me').set('Authorization', `Bearer ${token}`);
    await request(app).get(`/api/me?token=${tokens[0]}`).set('Authorization', `Bearer ${tokens[0]}`);
    await request(app).post('/api/me').set('Authorization', `Bearer ${tokens[0]}`).send({ token: tokens[0] });

    const output = lines.join('\n');
    expect(lines.length).toBeGreaterThanOrEqual(tokens.length + 2);
    for (const token of tokens) {
      expect(output).not.toContain(token);
      // Not even the signature part alone.
      const signature = token.split('.')[2];
      if (signature) expect(output).not.toContain(signature);
    }
    expect(output.toLowerCase()).not.toContain('authorization');
    expect(output).not.toContain('Bearer');
  });

  test('When a request fails authentication, then it is logged with its status and without a user id', async () => {
    await request(app).get('/api/me').set('Authorization', `Bearer ${hostileTokens.wrongSecret()}`).set('X-Request-Id', 'req-log-401');

    const entry = entryFor('req-log-401');
    expect(entry).toEqual(expect.objectContaining({ status: 401, route: '/api/me' }));
    expect(entry).not.toHaveProperty('userId');
  });

  test('When a probe is served, then its line is at debug level; API lines are at info', async () => {
    await request(app).get('/health').set('X-Request-Id', 'req-log-probe');
    await request(app).get('/api/me').set('Authorization', `Bearer ${tokenFor()}`).set('X-Request-Id', 'req-log-api');

    expect(entryFor('req-log-probe')?.level).toBe(20);
    expect(entryFor('req-log-api')?.level).toBe(30);
  });
});
