/** The reliability and security suite (issue #6): real service processes on a PostgreSQL each scenario
 * controls. Slow by design, so it is kept out of `npm test`; run it with `npm run test:reliability`.
 * Scenarios run one at a time: they kill processes and stop databases, and the machine has 2 cores. */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/tests/reliability'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.test.json' }] },
  globalSetup: '<rootDir>/tests/reliability/harness/global-setup.ts',
  globalTeardown: '<rootDir>/tests/reliability/harness/global-teardown.ts',
  maxWorkers: 1,
  testTimeout: 300000,
};
