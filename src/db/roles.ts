/**
 * Least-privilege database roles (issue 12, docs/operations.md "Database roles"). Migrations run as an
 * owner role that owns the schema; the service runs as an app role that may only read and write rows, and
 * never update or delete ledger rows, truncate, or change the schema. docs/operations.md prints exactly
 * this SQL (for the roles `accounting_owner` / `accounting_app` and the database `accounting`), and
 * tests/hostile/least-privilege.test.ts checks that the document and this module agree and runs the
 * service as such a role.
 */

export interface RoleNames {
  database: string;
  owner: string;
  app: string;
}

export const DOCUMENTED_ROLES: RoleNames = { database: 'accounting', owner: 'accounting_owner', app: 'accounting_app' };

/** Tables the service only appends to: no UPDATE, no DELETE (the ledger's trigger refuses them too). */
export const APPEND_ONLY_TABLES = ['credit_transactions', 'webhook_attempts'];

/**
 * Tables whose rows the service updates but never deletes (money, sessions, usage and its rollups, users,
 * prices, scheduled grants): a bug or an injected statement cannot make history disappear.
 */
export const NO_DELETE_TABLES = [
  'credit_allocations',
  'credit_schedule_grants',
  'model_prices',
  'session_holds',
  'session_status_counts',
  'streaming_sessions',
  'usage_daily',
  'usage_daily_system',
  'usage_records',
  'usage_totals',
  'usage_user_daily',
  'usage_user_weekly',
  'user_accounts',
];

/** The migrations' own bookkeeping: the service reads it (readiness, "nothing pending") and never writes it. */
export const READ_ONLY_TABLES = ['"SequelizeMeta"', 'repeatable_migrations'];

/** Run once by a superuser (or a role with CREATEROLE and CREATEDB). Set real passwords. */
export function createRolesSql({ database, owner, app }: RoleNames): string {
  return [
    `CREATE ROLE ${owner} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD 'change-me-owner';`,
    `CREATE ROLE ${app} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD 'change-me-app';`,
    `CREATE DATABASE ${database} OWNER ${owner};`,
  ].join('\n');
}

/**
 * Run as the owner, connected to the database, after `npm run migrate` (idempotent: run it again after
 * every migration run; tables created later get the default privileges meanwhile).
 */
export function grantAppSql({ database, owner, app }: RoleNames): string {
  return [
    `REVOKE ALL ON DATABASE ${database} FROM PUBLIC;`,
    `GRANT CONNECT ON DATABASE ${database} TO ${app};`,
    `REVOKE CREATE ON SCHEMA public FROM PUBLIC;`,
    `GRANT USAGE ON SCHEMA public TO ${app};`,
    `GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO ${app};`,
    `GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO ${app};`,
    `GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO ${app};`,
    `REVOKE UPDATE, DELETE ON ${APPEND_ONLY_TABLES.join(', ')} FROM ${app};`,
    `REVOKE DELETE ON ${NO_DELETE_TABLES.join(', ')} FROM ${app};`,
    `REVOKE INSERT, UPDATE, DELETE ON ${READ_ONLY_TABLES.join(', ')} FROM ${app};`,
    `ALTER DEFAULT PRIVILEGES FOR ROLE ${owner} IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO ${app};`,
    `ALTER DEFAULT PRIVILEGES FOR ROLE ${owner} IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO ${app};`,
  ].join('\n');
}
