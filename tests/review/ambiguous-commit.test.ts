import net from 'node:net';
import request from 'supertest';
import { createApp, type App } from '../../src/app';
import { databaseOptionsFrom } from '../../src/config/sequelize';
import { createDatabase, type Database } from '../../src/db/database';
import { createLogger } from '../../src/lib/logger';
import { createTestContext, type TestContext } from '../support/context';
import { count } from '../support/db';
import { userWithRole } from '../support/tokens';

/**
 * A TCP proxy in front of PostgreSQL that, once armed, forwards the next COMMIT to the server (so it
 * really commits) and then cuts the client's connection instead of passing the reply on: exactly what
 * a network failure after a successful COMMIT looks like to the service.
 */
function commitReplyDroppingProxy(host: string, port: number) {
  let armed = false;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(port, host);
    sockets.add(client).add(upstream);
    let pending = Buffer.alloc(0);
    let startedUp = false;
    let dropReply = false;
    client.on('data', (chunk) => {
      upstream.write(chunk);
      pending = Buffer.concat([pending, chunk]);
      for (;;) {
        if (!startedUp) {
          // The startup message has no type byte: int32 length (itself included) + payload.
          if (pending.length < 4 || pending.length < pending.readInt32BE(0)) break;
          pending = pending.subarray(pending.readInt32BE(0));
          startedUp = true;
          continue;
        }
        if (pending.length < 5 || pending.length < 1 + pending.readInt32BE(1)) break;
        const type = String.fromCharCode(pending[0]);
        const text = pending.subarray(5, 1 + pending.readInt32BE(1)).toString('utf8');
        pending = pending.subarray(1 + pending.readInt32BE(1));
        if (armed && type === 'Q' && /^\s*COMMIT/i.test(text)) {
          armed = false;
          dropReply = true;
        }
      }
    });
    upstream.on('data', (chunk) => {
      if (dropReply) {
        client.destroy();
        upstream.destroy();
        return;
      }
      client.write(chunk);
    });
    const closeBoth = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', closeBoth).on('close', closeBoth);
    upstream.on('error', closeBoth).on('close', closeBoth);
  });
  return {
    listen: () => new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port))),
    armForNextCommit: () => {
      armed = true;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

let ctx: TestContext;
let proxy: ReturnType<typeof commitReplyDroppingProxy>;
let proxiedDb: Database;
let proxiedApp: App;

beforeAll(async () => {
  // Sequelize warns on every failed COMMIT ("undetermined state"): expected here, and noise in the output.
  jest.spyOn(console, 'warn').mockImplementation(() => undefined);
  ctx = await createTestContext();
  const target = new URL(ctx.databaseUrl);
  proxy = commitReplyDroppingProxy(target.hostname, Number(target.port || 5432));
  const proxyPort = await proxy.listen();
  const viaProxy = new URL(ctx.databaseUrl);
  viaProxy.hostname = '127.0.0.1';
  viaProxy.port = String(proxyPort);
  proxiedDb = createDatabase(databaseOptionsFrom(ctx.config, viaProxy.toString(), { poolMax: 4 }));
  proxiedApp = createApp({ config: ctx.config, db: proxiedDb, logger: createLogger('silent') });
});

afterAll(async () => {
  await proxiedDb.close();
  await proxy.close();
  await ctx.close();
});

const grantsOf = (userId: string) => count(ctx.db, 'credit_transactions', `user_id = $1 AND type = 'grant'`, [userId]);

describe('connection lost after a COMMIT that went through', () => {
  test('When an allocation without Idempotency-Key loses its connection during COMMIT, then it is not granted a second time', async () => {
    const supervisor = userWithRole('supervisor');
    const target = `commit-lost-${Date.now()}`;
    await request(proxiedApp.app).get('/api/me').set('Authorization', supervisor.auth).expect(200); // mirror the caller first

    proxy.armForNextCommit();
    const res = await request(proxiedApp.app)
      .post('/api/credits/allocate')
      .set('Authorization', supervisor.auth)
      .send({ userId: target, credits: 10 });

    expect(await grantsOf(target)).toBe(1);
    // The outcome is unknown to the service: it must not re-run the grant, nor claim nothing changed.
    expect(res.status).toBe(500);
    expect(res.body.error.code).toBe('INTERNAL');
  });

  test('When an allocation with an Idempotency-Key loses its connection during COMMIT, then the retry replays the committed grant', async () => {
    const supervisor = userWithRole('supervisor');
    const target = `commit-lost-keyed-${Date.now()}`;
    await request(proxiedApp.app).get('/api/me').set('Authorization', supervisor.auth).expect(200);

    proxy.armForNextCommit();
    const res = await request(proxiedApp.app)
      .post('/api/credits/allocate')
      .set('Authorization', supervisor.auth)
      .set('Idempotency-Key', 'grant-once')
      .send({ userId: target, credits: 10 });

    expect(res.status).toBe(201);
    expect(res.headers['idempotent-replayed']).toBe('true');
    expect(await grantsOf(target)).toBe(1);
  });

  test('When a usage record without Idempotency-Key loses its connection during COMMIT, then it is not recorded and charged twice', async () => {
    const user = userWithRole('user');
    await request(proxiedApp.app).get('/api/me').set('Authorization', user.auth).expect(200);

    proxy.armForNextCommit();
    const res = await request(proxiedApp.app)
      .post('/api/usage/record')
      .set('Authorization', user.auth)
      .send({ service: 'chat', operation: 'completion', credits: 1 });

    expect(await count(ctx.db, 'usage_records', 'user_id = $1', [user.id])).toBe(1);
    expect(res.status).toBe(500);
  });
});
