/**
 * Shared by the orchestrator (run.ts), the load generator (load.ts) and the baseline (baseline-server.ts),
 * so every process agrees on the secret, the seeded users and what a request asks for.
 */

/** HS256 secret of the benchmark's service and baseline; tokens are pre-signed with it. Never used elsewhere. */
export const BENCH_JWT_SECRET = 'bench-secret-only-for-the-local-benchmark-0123456789';

export const USER_COUNT = 10_000;
export const USER_PREFIX = 'bench-user-';
/** Seeded users are bench-user-1 .. bench-user-USER_COUNT. */
export const userId = (i: number) => `${USER_PREFIX}${i}`;
export const HOT_USER = 'bench-hot-user';

/** Every hold asks for this: a cheap model, so 10,000 users x 1,000 credits never run dry. */
export const MODEL_ID = 'gpt-4o-mini';
export const ESTIMATED_INPUT_TOKENS = 1_000;
export const ESTIMATED_OUTPUT_TOKENS = 1_000;
export const ACTUAL_INPUT_TOKENS = 900;
export const ACTUAL_OUTPUT_TOKENS = 700;

/**
 * Pool size for the service and the baseline alike (the service's DATABASE_POOL_MAX; override with
 * --pool or DATABASE_POOL_MAX). Sized for the benchmark's database, 2 cores: 2-4 connections per core,
 * as .env.example advises. With 10, PostgreSQL ran ten backends on two cores and the one-statement
 * requests' tail grew (docs/performance.md, "Pool size").
 */
export const DEFAULT_POOL_MAX = 6;
