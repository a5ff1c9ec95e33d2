import request from 'supertest';
import { createTestContext, type TestContext } from '../support/context';
import { userWithRole } from '../support/tokens';

let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext();
});
afterAll(async () => {
  await ctx.close();
});

describe('idempotent replay', () => {
  test('When a keyed allocate is retried, then the replayed body is byte for byte the first response', async () => {
    const supervisor = userWithRole('supervisor');
    const post = () =>
      request(ctx.app)
        .post('/api/credits/allocate')
        .set('Authorization', supervisor.auth)
        .set('Idempotency-Key', 'replay-bytes')
        .send({ userId: 'replay-bytes-target', credits: 12.5, note: 'n' });

    const first = await post().expect(201);
    const replay = await post().expect(201);

    expect(replay.headers['idempotent-replayed']).toBe('true');
    expect(replay.text).toBe(first.text);
  });
});
