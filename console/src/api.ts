import { AccountingClient, AccountingError, randomId, type Schemas } from '../../client';
import { daysBetween, toMicro } from './format';

/**
 * The console's only way to the API: the typed client from client/, same origin, with the token the
 * operator pasted. The token lives in sessionStorage (gone when the tab closes), never in a URL or a log.
 */
const TOKEN_KEY = 'accounting-console.token';

/** Changes whenever the token is set or cleared: work started under one sign-in stops at the next. */
let signIn = 0;

export const tokenStore = {
  get: (): string | null => sessionStorage.getItem(TOKEN_KEY),
  set: (token: string) => {
    signIn++;
    sessionStorage.setItem(TOKEN_KEY, token);
  },
  clear: () => {
    signIn++;
    sessionStorage.removeItem(TOKEN_KEY);
  },
};

/** Why a call is not sent: the operator signed out (or in as someone else) since the work began. */
const signedOut = () => new Error('Signed out');

/** Told when the API answers 401, so the shell can sign out. */
let onUnauthenticated: (message: string) => void = () => undefined;
export const setUnauthenticatedHandler = (handler: (message: string) => void) => (onUnauthenticated = handler);

const raw = new AccountingClient({
  baseUrl: window.location.origin,
  token: () => tokenStore.get() ?? '',
  // An operator is watching: retry a 503/429 once, then show the error.
  retry: { attempts: 2, baseDelayMs: 300, maxDelayMs: 3000 },
  timeoutMs: 30_000,
});

/** client.call, plus signing out on 401. */
export const api: Pick<AccountingClient, 'call'> = {
  call: (async (...args: Parameters<AccountingClient['call']>) => {
    // Without a token the answer is a 401: a page still loading when the operator signed out sends nothing.
    if (!tokenStore.get()) throw signedOut();
    try {
      return await raw.call(...args);
    } catch (error) {
      if (error instanceof AccountingError && error.status === 401) onUnauthenticated(error.message);
      throw error;
    }
  }) as AccountingClient['call'],
};

export { AccountingError, randomId };
export type { Schemas };
export const fetchMe = () => api.call('get', '/api/me');
export type Me = Awaited<ReturnType<typeof fetchMe>>;

/** Whether the page was served with the development sign-in (local embedded mode only). */
export const devSignInAvailable = () => document.querySelector('meta[name="dev-sign-in"]')?.getAttribute('content') === 'available';

/** POST /admin/dev-sign-in: not part of the API (it exists only in local embedded mode), so plain fetch. */
export async function devSignIn(): Promise<string> {
  const response = await fetch('/admin/dev-sign-in', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}' });
  const body = (await response.json().catch(() => ({}))) as { token?: string; error?: { message?: string } };
  if (!response.ok || !body.token) throw new Error(body.error?.message ?? `development sign-in failed (${response.status})`);
  return body.token;
}

/** The message to show for anything thrown: the API's code and message, its listed problems, its request id. */
export function describeError(error: unknown): { title: string; problems: string[]; requestId?: string } {
  if (error instanceof AccountingError) {
    const problems = Array.isArray((error.details as { problems?: unknown })?.problems)
      ? ((error.details as { problems: { path?: string; message?: string; location?: string }[] }).problems ?? []).map(
          (p) => `${p.path ? p.path + ': ' : ''}${p.message ?? ''}`,
        )
      : error.details
        ? Object.entries(error.details).map(([k, v]) => `${k}: ${typeof v === 'object' ? JSON.stringify(v) : String(v)}`)
        : [];
    return { title: error.message, problems, requestId: error.requestId };
  }
  return { title: error instanceof Error ? error.message : String(error), problems: [] };
}

export type DailyByModel = { days: string[]; models: { modelId: string; credits: bigint[] }[] };

/** Longest range the per-day charts fetch (one statistics call per UTC day; see docs/console.md). */
export const CHART_MAX_DAYS = 92;

/**
 * Daily credits per model over UTC days, from one statistics call per day (the statistics API gives
 * `byModel` per range and `daily` without models). Calls run a few at a time.
 */
export async function dailyByModel(
  from: string,
  to: string,
  statsOfDay: (day: string) => Promise<{ byModel: { modelId: string | null; credits: number }[] }>,
): Promise<DailyByModel> {
  const days = daysBetween(from, to);
  if (days.length === 0) throw new Error('"From" must not be after "to"');
  if (days.length > CHART_MAX_DAYS) throw new Error(`Choose at most ${CHART_MAX_DAYS} days for the chart (got ${days.length})`);
  const perDay: { modelId: string | null; credits: number }[][] = new Array(days.length);
  let next = 0;
  const started = signIn;
  const worker = async () => {
    while (next < days.length) {
      // A chart still loading at sign-out must not go on asking with the next operator's token.
      if (signIn !== started) throw signedOut();
      const i = next++;
      perDay[i] = (await statsOfDay(days[i])).byModel;
    }
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
  const byModel = new Map<string, bigint[]>();
  perDay.forEach((items, dayIndex) => {
    for (const item of items) {
      const key = item.modelId ?? '(no model)';
      if (!byModel.has(key)) byModel.set(key, days.map(() => 0n));
      byModel.get(key)![dayIndex] += toMicro(item.credits);
    }
  });
  const models = [...byModel.entries()]
    .map(([modelId, credits]) => ({ modelId, credits, total: credits.reduce((a, b) => a + b, 0n) }))
    .sort((a, b) => (b.total > a.total ? 1 : b.total < a.total ? -1 : a.modelId.localeCompare(b.modelId)))
    .map(({ modelId, credits }) => ({ modelId, credits }));
  return { days, models };
}

/** Every page of a cursor list, up to `maxPages` (for filters the API does not offer yet). */
export async function collectPages<T>(fetchPage: (cursor?: string) => Promise<{ data: T[]; nextCursor: string | null }>, maxPages = 20) {
  const items: T[] = [];
  let cursor: string | undefined;
  for (let i = 0; i < maxPages; i++) {
    const page = await fetchPage(cursor);
    items.push(...page.data);
    if (!page.nextCursor) return { items, complete: true };
    cursor = page.nextCursor;
  }
  return { items, complete: false };
}
