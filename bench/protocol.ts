/** Messages between the orchestrator (run.ts) and the load generator (load.ts). */

export type LoadKind = 'statement-loop' | 'baseline-initialize' | 'baseline-flow' | 'baseline-hold' | 'initialize' | 'finalize-opened' | 'flow' | 'initialize-hot' | 'get' | 'mixed';

export type LoadRequest =
  | { type: 'run'; id: string; kind: LoadKind; url: string; path?: string; connections: number; durationSec: number }
  | { type: 'stop' };

/** Summed over every round the scenario id ran in so far. */
export interface ScenarioResult {
  requests: number;
  seconds: number;
  reqPerSec: number;
  p50: number;
  p99: number;
  max: number;
  ok: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  /** "status CODE" -> count, from non-2xx bodies. */
  errorCodes: Record<string, number>;
  /** Requests per unit of work: 2 for an initialize→finalize flow. */
  perFlow: number;
}

export type LoadResponse =
  | { type: 'ready'; users: number }
  | { type: 'result'; result: ScenarioResult }
  | { type: 'skipped'; reason: string }
  | { type: 'failed'; error: string };
