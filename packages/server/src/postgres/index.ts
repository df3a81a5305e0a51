export { openPostgres, quoteSchema, isConnectionError, statement } from './pool.js';
export type { Postgres, PostgresOptions, Queryable } from './pool.js';
export { migrate, latestVersion, SchemaVersionError } from './migrate.js';
export type { Migration } from './migrate.js';
