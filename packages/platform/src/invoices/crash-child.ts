import { openPlatformAccounts } from '../billing/index.js';
import { openPgLedger, openSqliteLedger, type Ledger } from '../ledger/index.js';
import type { Invoice } from './invoice.js';
import { Invoicer } from './issue.js';
import { PgInvoiceStorage } from './postgres.js';
import { SqliteInvoiceStorage } from './sqlite.js';
import type { InvoiceStorage } from './storage.js';

/**
 * A node of the crash test (crash.test.ts): runs the invoices job once on the given
 * database at the given clock, and kills itself with SIGKILL (kill -9: nothing runs after
 * it) right after the n-th tax posting is committed or the n-th invoice is recorded.
 * Argument: JSON { sqlite?: path, pg?: {url, prefix}, now, kill?: 'tax' | 'record', at?: n }.
 */

interface Args {
  sqlite?: string;
  pg?: { url: string; prefix: string };
  now: number;
  kill?: 'tax' | 'record';
  at?: number;
}

const args = JSON.parse(process.argv[2] as string) as Args;
const clock = () => args.now;
let ledger: Ledger;
let storage: InvoiceStorage;
if (args.sqlite) {
  const l = openSqliteLedger(args.sqlite, { clock });
  ledger = l;
  storage = new SqliteInvoiceStorage(l.db);
} else {
  const l = await openPgLedger({ ...(args.pg as { url: string; prefix: string }), clock });
  ledger = l;
  storage = await PgInvoiceStorage.open(l.db);
}
await openPlatformAccounts(ledger);

let taxes = 0;
let records = 0;
const die = () => process.kill(process.pid, 'SIGKILL');
const watched: Ledger = Object.create(ledger, {
  post: {
    value: async (input: Parameters<Ledger['post']>[0]) => {
      const r = await ledger.post(input);
      if (args.kill === 'tax' && input.key.startsWith('tax:') && ++taxes === args.at) die();
      return r;
    },
  },
});
const watchedStorage: InvoiceStorage = Object.create(storage, {
  issue: {
    value: async (d: Omit<Invoice, 'number'>) => {
      const r = await storage.issue(d);
      if (args.kill === 'record' && ++records === args.at) die();
      return r;
    },
  },
});
const invoicer = new Invoicer({ ledger: watched, storage: watchedStorage, clock, taxRate: 2000, seller: { name: 'Micro', lines: [] }, buyerOf: async (p) => ({ name: p, lines: [] }) });
await invoicer.tick();
await ledger.close();
process.stdout.write('done\n');
