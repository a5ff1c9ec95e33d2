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
  /** Scenario 6: fast-check seed (printed with the figure, so a failure can be replayed). */
  fuzzSeed: Number(process.env.RELIABILITY_FUZZ_SEED ?? Date.now() % 2_147_483_647),
};
