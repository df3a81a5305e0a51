export * from './ledger.js';
export { FUNDS_ID } from './core.js';
export { openSqliteLedger, SqliteLedger } from './sqlite.js';
export { openPgLedger, PgLedger, LEDGER_POSTGRES_MIGRATIONS } from './postgres.js';
