/**
 * Knobs of the suite, from the environment. The defaults fit CI (the whole suite in under 10 minutes on
 * 2 cores); RELIABILITY_SOAK=1 raises every default for a longer soak (about 30 minutes). Any single
 * variable still overrides its default.
 */
const soak = process.env.RELIABILITY_SOAK === '1';
const num = (name: string, ci: number, soakValue: number) => Number(process.env[name] ?? (soak ? soakValue : ci));

export const SETTINGS = {
  soak,
  /** Scenario 1b: length of the mixed storm on one user. */
  stormMs: num('RELIABILITY_STORM_MS', 120_000, 900_000),
  /** Scenario 2: how many times a process is killed with SIGKILL. */
  kills: num('RELIABILITY_KILLS', 5, 30),
  /** Scenario 3: how long the database stays down. */
  dbDownMs: num('RELIABILITY_DB_DOWN_MS', 4_000, 30_000),
  /** Scenario 5: operations of each kind cut and retried. */
  retryOps: num('RELIABILITY_RETRY_OPS', 40, 400),
  /** Scenario 6: generated requests per route. */
  fuzzRuns: num('RELIABILITY_FUZZ_RUNS', 150, 2_000),
  /**
   * Scenario 6c: requests of the issue-12 hostile classes (text, numbers, types, sizes, cursors), all routes
   * together. With 6a and 6b, scenario 6 sends over 20,000 requests under its "no 5xx, refused changes nothing" oracle.
   */
  hostileRequests: num('RELIABILITY_HOSTILE_REQUESTS', 12_500, 100_000),
  /** Scenario 6d: requests of the shard-overflow attack (3 attackers together). */
  abuseRequests: num('RELIABILITY_ABUSE_REQUESTS', 1_023, 5_000),
  /** Scenario 6: fast-check seed (printed with the figure, so a failure can be replayed). */
  fuzzSeed: Number(process.env.RELIABILITY_FUZZ_SEED ?? Date.now() % 2_147_483_647),
};
