import request from 'supertest';
import { createTestContext, type TestContext } from '../support/context';
import { count } from '../support/db';
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

  test('When a keyed allocate is retried with the path in other letter case, then it is the same request (replayed, one grant)', async () => {
    const supervisor = userWithRole('supervisor');
    const post = (path: string) =>
      request(ctx.app)
        .post(path)
        .set('Authorization', supervisor.auth)
        .set('Idempotency-Key', 'replay-case')
        .send({ userId: 'replay-case-target', credits: 3, note: 'n' });

    const first = await post('/api/Credits/allocate').expect(201);
    const retry = await post('/api/credits/ALLOCATE').expect(201);

    expect(retry.headers['idempotent-replayed']).toBe('true');
    expect(retry.text).toBe(first.text);
    expect(await count(ctx.db, 'credit_allocations', 'user_id = $1', ['replay-case-target'])).toBe(1);
  });
});
