export { UNIT, UNITS_PER_DOLLAR, MAX_AMOUNT, MAX_BALANCE, MAX_ENTRIES, DEFAULT_PAGE, MAX_PAGE, MAX_BATCH, MAX_BATCH_ENTRIES, MAX_POST_MANY, ACCOUNT_KINDS } from './ledger.js';
export type { AccountKind, AccountInput, Account, EntryInput, PostingInput, Posting, PostResult, PostOutcome, HistoryEntry, HistoryOptions, HistoryPage, AccountPage, TrialBalance, Ledger, LedgerOptions } from './ledger.js';
export { FUNDS_ID } from './core.js';
export type { CommitStats } from './base.js';
export { openSqliteLedger, SqliteLedger } from './sqlite.js';
export { openPgLedger, PgLedger, LEDGER_POSTGRES_MIGRATIONS } from './postgres.js';
