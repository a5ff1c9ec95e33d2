import type { CallResult } from './http';

export interface LoadOptions {
  /** Operations in flight at once. */
  concurrency: number;
  /** Hard cap on operations started. */
  maxOperations: number;
  /** Hard cap on wall time; no new operation starts after it. */
  maxDurationMs: number;
  /** One operation (usually one HTTP call, sometimes a short sequence); `i` counts from 0. */
  operation: (i: number) => Promise<void>;
  /** Optional early stop, checked before each operation. */
  shouldStop?: () => boolean;
}

/**
 * A small closed-loop load driver: `concurrency` workers each run operations back to back until the
 * operation count or the time budget is spent. Loopback only; bounded both ways, so it cannot run away.
 */
export async function runLoad(options: LoadOptions): Promise<{ operations: number; elapsedMs: number }> {
  const started = Date.now();
  let next = 0;
  const worker = async () => {
    while (next < options.maxOperations && Date.now() - started < options.maxDurationMs && !options.shouldStop?.()) {
      const i = next++;
      await options.operation(i);
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, worker));
  return { operations: next, elapsedMs: Date.now() - started };
}

/** Counts responses by status (0 = no response) and keeps a few samples of each unexpected kind. */
export class Tally {
  readonly byStatus = new Map<number, number>();
  readonly samples = new Map<number, string[]>();
  readonly transportErrors = new Map<string, number>();

  add(result: CallResult): CallResult {
    this.byStatus.set(result.status, (this.byStatus.get(result.status) ?? 0) + 1);
    if (result.status === 0) {
      const key = result.error ?? 'unknown';
      this.transportErrors.set(key, (this.transportErrors.get(key) ?? 0) + 1);
    }
    if (result.status === 0 || result.status >= 500) {
      const list = this.samples.get(result.status) ?? [];
      if (list.length < 5) list.push(result.error ?? result.text.slice(0, 300));
      this.samples.set(result.status, list);
    }
    return result;
  }

  count(predicate: (status: number) => boolean): number {
    let n = 0;
    for (const [status, c] of this.byStatus) if (predicate(status)) n += c;
    return n;
  }

  get total(): number {
    return this.count(() => true);
  }

  get ok(): number {
    return this.count((s) => s >= 200 && s < 300);
  }

  get serverErrors(): number {
    return this.count((s) => s >= 500);
  }

  /** e.g. "200:812 402:188 503:0" */
  summary(): string {
    return [...this.byStatus.entries()]
      .sort(([a], [b]) => a - b)
      .map(([s, c]) => `${s === 0 ? 'none' : s}:${c}`)
      .join(' ');
  }
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `check` until it returns true, or fails with `what` after `timeoutMs`. */
export async function waitFor(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 30_000, everyMs = 100): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(everyMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}
