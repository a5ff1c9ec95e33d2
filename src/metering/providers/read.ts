import { MAX_TOKENS, type TokenUsage, type UsageProblem } from '../tokens';

export type MapResult = { ok: true; usage: TokenUsage } | { ok: false; problems: UsageProblem[] };

/**
 * Reads token counts out of a provider's usage object, collecting problems with paths relative to it.
 * Counts are non-negative integers; a missing or null field reads as absent (providers omit zeros).
 */
export class UsageReader {
  readonly problems: UsageProblem[] = [];

  constructor(private readonly root: unknown) {
    if (!isObject(root)) this.problems.push({ path: [], message: 'must be an object' });
  }

  /** A count at a path, undefined when absent (or null); `required` makes absence a problem. */
  count(path: (string | number)[], required = false): number | undefined {
    let value: unknown = this.root;
    for (let i = 0; i < path.length; i++) {
      if (value === undefined || value === null) break;
      if (!isObject(value) && !Array.isArray(value)) {
        this.problems.push({ path: path.slice(0, i), message: 'must be an object' });
        return undefined;
      }
      value = (value as Record<string | number, unknown>)[path[i]];
    }
    if (value === undefined || value === null) {
      if (required) this.problems.push({ path, message: 'is required' });
      return undefined;
    }
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > MAX_TOKENS) {
      this.problems.push({ path, message: `must be a whole number of tokens from 0 to ${MAX_TOKENS}` });
      return undefined;
    }
    return value;
  }

  /** An optional array at a path ([] when absent). */
  array(path: string[]): unknown[] {
    let value: unknown = this.root;
    for (const key of path) value = isObject(value) ? value[key] : undefined;
    if (value === undefined || value === null) return [];
    if (!Array.isArray(value)) {
      this.problems.push({ path, message: 'must be an array' });
      return [];
    }
    return value;
  }

  /** The mapped usage, or the problems found while reading it. */
  result(usage: TokenUsage): MapResult {
    return this.problems.length > 0 ? { ok: false, problems: this.problems } : { ok: true, usage };
  }
}

export const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);
