import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import type { Server } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { AccountingClient, AccountingError, type Schemas } from '../../client';
import { offlineDocument } from '../../scripts/openapi';
import { createTestContext, type TestContext } from '../support/context';
import { count } from '../support/db';
import { tokenFor, userWithRole } from '../support/tokens';

const ROOT = path.resolve(__dirname, '../..');
let ctx: TestContext;
let server: Server;
let baseUrl: string;

beforeAll(async () => {
  ctx = await createTestContext();
  server = ctx.app.listen(0);
  await new Promise((resolve) => server.once('listening', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});
afterAll(async () => {
  // fetch keeps connections alive; close them so neither the server nor this worker lingers.
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  await ctx.close();
});

const supervisor = () => new AccountingClient({ baseUrl, token: tokenFor({ sub: 'client-supervisor', role: 'supervisor' }) });

/** A user with `credits` allocated, and a client acting for them (optionally with an injected fetch). */
async function fundedClient(credits: number, options: Partial<ConstructorParameters<typeof AccountingClient>[0]> = {}) {
  const user = userWithRole('user');
  await supervisor().allocate({ userId: user.id, credits });
  const client = new AccountingClient({ baseUrl, token: () => tokenFor({ sub: user.id }), retry: { baseDelayMs: 5 }, ...options });
  return { user, client };
}

describe('typed client types', () => {
  test('When client/schema.d.ts is compared with types generated from the current OpenAPI document, then they are identical (else run npm run client:types)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'acct-client-'));
    try {
      fs.writeFileSync(path.join(dir, 'openapi.json'), JSON.stringify(await offlineDocument()));
      // The same command as `npm run client:types`.
      const cli = path.join(ROOT, 'node_modules/.bin/openapi-typescript');
      const generated = spawnSync(cli, [path.join(dir, 'openapi.json'), '--output', path.join(dir, 'schema.d.ts')], { cwd: ROOT, encoding: 'utf8' });
      expect(generated.stderr + (generated.status === 0 ? '' : ' failed')).not.toMatch(/failed$/);

      const fresh = fs.readFileSync(path.join(dir, 'schema.d.ts'), 'utf8');
      const committed = fs.readFileSync(path.join(ROOT, 'client/schema.d.ts'), 'utf8');
      expect(committed === fresh ? 'up to date' : 'client/schema.d.ts is stale: run `npm run client:types`').toBe('up to date');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('typed client against the service', () => {
  test('When a model call streams and succeeds, then initialize -> stream -> finalize charges the real cost once', async () => {
    const { user, client } = await fundedClient(100);

    const { session, result } = await client.withStreamingSession(
      { modelId: 'gpt-4o', estimatedInputTokens: 4000, estimatedOutputTokens: 4000 },
      async (s) => {
        expect(s.status).toBe('active');
        return { actualInputTokens: 1000, actualOutputTokens: 1000 };
      },
    );
    const balance: Schemas['Balance'] = await client.balance();

    expect(session.allocatedCredits).toBe(5);
    expect(result).toMatchObject({ status: 'completed', usedCredits: 1.25, refundedCredits: 3.75, unpaidCredits: 0 });
    expect(balance.availableCredits).toBe(98.75);
    expect(await count(ctx.db, 'usage_records', 'user_id = $1', [user.id])).toBe(1);
  });

  test('When the stream fails after reporting partial usage, then the session is aborted, charging that usage, and the error is rethrown', async () => {
    const { user, client } = await fundedClient(100);

    const failure = client.withStreamingSession({ modelId: 'gpt-4o', estimatedCredits: 10 }, async (s) => {
      s.report({ actualInputTokens: 2000, actualOutputTokens: 500 });
      throw new Error('upstream model disconnected');
    });

    await expect(failure).rejects.toThrow('upstream model disconnected');
    const [row] = await ctx.db.query<{ status: string; used_credits: string }>(`SELECT status, used_credits FROM streaming_sessions WHERE user_id = $1`, [user.id]);
    // 2000 input (0.5) + 500 output (0.5) at gpt-4o prices.
    expect(row).toEqual({ status: 'aborted', used_credits: '1000000' });
  });

  test('When the finalize response is lost after the service applied it, then the retry reuses the key and nothing is charged twice', async () => {
    let lost = 0;
    const retries: string[] = [];
    const { user, client } = await fundedClient(100, {
      onRetry: (info) => retries.push(info.reason),
      fetch: async (url, init) => {
        const response = await fetch(url, init);
        if (String(url).endsWith('/finalize') && lost === 0) {
          lost++;
          await response.text();
          throw new TypeError('fetch failed: socket hang up'); // applied, but the caller never hears
        }
        return response;
      },
    });

    const { result } = await client.withStreamingSession({ modelId: 'gpt-4o', estimatedCredits: 10 }, async () => ({
      actualInputTokens: 4000,
      actualOutputTokens: 1000,
    }));

    expect(lost).toBe(1);
    expect(retries).toEqual(['network: fetch failed: socket hang up']);
    expect(result).toMatchObject({ status: 'completed', usedCredits: 2, refundedCredits: 8 });
    expect(await count(ctx.db, 'credit_transactions', `user_id = $1 AND type = 'capture'`, [user.id])).toBe(1);
    expect(await count(ctx.db, 'usage_records', 'user_id = $1', [user.id])).toBe(1);
    expect((await client.balance()).availableCredits).toBe(98);
  });

  test('When the initialize response is lost, then the retry with the same sessionId returns the same session and holds once', async () => {
    let lost = 0;
    const { user, client } = await fundedClient(50, {
      fetch: async (url, init) => {
        const response = await fetch(url, init);
        if (String(url).endsWith('/initialize') && lost++ === 0) throw new TypeError('fetch failed');
        return response;
      },
    });

    const session = await client.initialize({ modelId: 'gpt-4o', estimatedCredits: 20 });

    expect(session.status).toBe('active');
    expect(await count(ctx.db, 'streaming_sessions', 'user_id = $1', [user.id])).toBe(1);
    expect((await client.balance()).availableCredits).toBe(30);
  });

  test.each([
    [429, 'RATE_LIMITED', '1'],
    [503, 'SERVICE_UNAVAILABLE', '0'],
    [409, 'IDEMPOTENCY_IN_PROGRESS', undefined],
  ])('When the service first answers %i %s, then the client waits (Retry-After honoured) and retries the same request', async (status, code, retryAfter) => {
    const delays: number[] = [];
    const keys: (string | null)[] = [];
    let refused = 0;
    const { user, client } = await fundedClient(10, {
      onRetry: (info) => delays.push(info.delayMs),
      fetch: async (url, init) => {
        keys.push(new Headers(init?.headers).get('Idempotency-Key'));
        if (String(url).endsWith('/initialize') && refused++ === 0) {
          const headers: Record<string, string> = { 'Content-Type': 'application/json', ...(retryAfter ? { 'Retry-After': retryAfter } : {}) };
          return new Response(JSON.stringify({ error: { code, message: 'try later', requestId: 'r' } }), { status, headers });
        }
        return fetch(url, init);
      },
    });

    const session = await client.initialize({ modelId: 'gpt-4o', estimatedCredits: 4 });

    expect(session.status).toBe('active');
    expect(delays).toHaveLength(1);
    if (retryAfter) expect(delays[0]).toBeGreaterThanOrEqual(Number(retryAfter) * 1000);
    // The retry reuses the call's key; the key is the call's own, not the sessionId's alone.
    expect(keys).toEqual([expect.stringMatching(new RegExp(`^initialize:${session.sessionId}:.+`)), keys[0]]);
    expect(await count(ctx.db, 'streaming_sessions', 'user_id = $1', [user.id])).toBe(1);
  });

  test('When the service refuses for a reason a retry cannot fix, then an AccountingError carries its code and no retry happens', async () => {
    const delays: number[] = [];
    const { client } = await fundedClient(1, { onRetry: (info) => delays.push(info.delayMs) });

    const error = await client.initialize({ modelId: 'gpt-4o', estimatedCredits: 5 }).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(AccountingError);
    expect(error).toMatchObject({ status: 402, code: 'INSUFFICIENT_CREDITS', details: { requiredCredits: 5, availableCredits: 1 } });
    expect(delays).toEqual([]);
  });

  test('When retries run out, then the last error is thrown', async () => {
    const { client } = await fundedClient(1, {
      retry: { attempts: 3, baseDelayMs: 1 },
      fetch: async () => {
        throw new TypeError('fetch failed: ECONNREFUSED');
      },
    });

    await expect(client.balance()).rejects.toThrow('ECONNREFUSED');
  });
});
