/** Tests run against a real PostgreSQL: tests/support/global-setup.ts starts one (embedded unless
 * TEST_DATABASE_URL or DATABASE_URL is set) and migrates a template; each test file clones its own database. */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/tests'],
  testMatch: ['**/*.test.ts'],
  // The reliability suite has its own config (jest.reliability.config.js, npm run test:reliability).
  testPathIgnorePatterns: ['/node_modules/', '<rootDir>/tests/reliability/'],
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.test.json' }] },
  globalSetup: '<rootDir>/tests/support/global-setup.ts',
  globalTeardown: '<rootDir>/tests/support/global-teardown.ts',
  maxWorkers: 2,
  testTimeout: 60000,
};
