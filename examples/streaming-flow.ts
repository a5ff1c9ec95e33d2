/**
 * The whole flow a backend service runs around a streamed model call, against a local service:
 *
 *   npm start                # in one terminal (embedded PostgreSQL, http://localhost:3000)
 *   npm run example          # in another
 *
 * 1. a supervisor allocates credits to a user;
 * 2. the user's request opens a streaming session (the estimate is held);
 * 3. the "model" streams (simulated) and the session is finalized with the real token counts;
 * 4. a second call stops mid-stream and is aborted, charging what was streamed;
 * 5. the balance and usage statistics are read back (days without usage left out).
 *
 * Tokens are minted like `npm run token` does (same config: JWT_SECRET, or the local generated secret).
 * ACCOUNTING_URL overrides the address (default http://localhost:$PORT or 3000).
 */
import 'dotenv/config';
import crypto from 'node:crypto';
import jwt from 'jsonwebtoken';
import { AccountingClient } from '../client';
import { loadConfig } from '../src/config';

const config = loadConfig();
const baseUrl = process.env.ACCOUNTING_URL ?? `http://localhost:${config.PORT}`;

function token(sub: string, role: 'user' | 'supervisor' | 'admin'): string {
  return jwt.sign({ sub, role, username: sub }, config.jwt.key, {
    algorithm: 'HS256',
    expiresIn: '10m',
    ...(config.jwt.issuer ? { issuer: config.jwt.issuer } : {}),
    ...(config.jwt.audience ? { audience: config.jwt.audience } : {}),
  });
}

const log = (step: string, value: unknown) => console.log(`\n${step}\n${JSON.stringify(value, null, 2)}`);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function main() {
  const userId = `example-${crypto.randomBytes(3).toString('hex')}`;
  const onRetry = (info: { attempt: number; delayMs: number; reason: string; path: string }) =>
    console.log(`  retry ${info.attempt} of ${info.path} in ${info.delayMs} ms (${info.reason})`);
  const supervisor = new AccountingClient({ baseUrl, token: token('example-supervisor', 'supervisor'), onRetry });
  // A backend service acts for each user with that user's token.
  const user = supervisor.withToken(() => token(userId, 'user'));

  log(`1. allocate 100 credits to ${userId}`, await supervisor.allocate({ userId, credits: 100, note: 'examples/streaming-flow.ts' }));

  const { session, result } = await user.withStreamingSession(
    { modelId: 'gpt-4o-mini', estimatedInputTokens: 20_000, estimatedOutputTokens: 10_000 },
    async (s) => {
      log('2. session opened (estimate held)', s);
      let outputTokens = 0;
      for (let chunk = 0; chunk < 5; chunk++) {
        await sleep(50); // the model streams...
        outputTokens += 1_200;
      }
      return { actualInputTokens: 18_500, actualOutputTokens: outputTokens, cachedInputTokens: 8_000 };
    },
  );
  log(`3. session ${session.sessionId} finalized`, result);

  // The end user closes the tab after 700 output tokens: abort charges what was streamed and releases the
  // rest. (withStreamingSession above does the same by itself when its callback throws.)
  const second = await user.initialize({ modelId: 'gpt-4o-mini', estimatedInputTokens: 5_000, estimatedOutputTokens: 5_000 });
  const aborted = await user.abort({ sessionId: second.sessionId, actualInputTokens: 5_000, actualOutputTokens: 700, reason: 'end user closed the tab' });
  log(`4. session ${second.sessionId} stopped mid-stream and aborted`, aborted);

  log('5. balance', await user.balance());
  const stats = await user.call('get', '/api/usage/stats');
  const daysWithUsage = stats.daily.filter((day) => day.requests > 0);
  // The statistics cover 30 days by default, one entry per day; only the days with usage are shown here.
  log(`6. usage statistics, ${stats.from.slice(0, 10)} to ${stats.to.slice(0, 10)} (${daysWithUsage.length} of ${stats.daily.length} days with usage)`, {
    totals: stats.totals,
    byModel: stats.byModel,
    daily: daysWithUsage,
  });
}

main().catch((error) => {
  console.error(error instanceof Error ? error.message : error);
  if (String(error).includes('fetch failed')) console.error(`Is the service running at ${baseUrl}? Start it with npm start.`);
  process.exit(1);
});
