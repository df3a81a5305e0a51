export { UNIT, UNITS_PER_DOLLAR, MAX_AMOUNT, MAX_BALANCE, MAX_ENTRIES, DEFAULT_PAGE, MAX_PAGE, ACCOUNT_KINDS } from './ledger.js';
export type { AccountKind, AccountInput, Account, EntryInput, PostingInput, Posting, PostResult, HistoryEntry, HistoryPage, AccountPage, TrialBalance, Ledger, LedgerOptions } from './ledger.js';
export { FUNDS_ID } from './core.js';
export { openSqliteLedger, SqliteLedger } from './sqlite.js';
export { openPgLedger, PgLedger, LEDGER_POSTGRES_MIGRATIONS } from './postgres.js';
