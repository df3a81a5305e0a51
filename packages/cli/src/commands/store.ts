import { Command, Option } from 'commander';
import { MicroError } from '@micro/sdk';
import { connect, type Connection } from '../connect.js';
import type { CliContext } from '../context.js';
import { CliError, UsageError, formatDuration, type Printer } from '../output.js';
// WIRING: from '@micro/sdk' once the SDK's index exports the store module
import { RemoteStore, STORE_LIMITS, type StoreMetadataValue as MetadataValue, type StoreRecord } from '@micro/sdk';

/**
 * `micro store`: the records of the store service of `micro server`, as in Go micro v3.
 *
 *   micro store read <key> [--prefix] [--suffix]      the value (or a table of records)
 *   micro store write <key> <value> [--ttl 60] [--metadata k=v]
 *   micro store delete <key>
 *   micro store list [--prefix P] [--suffix S] [--after K] [--limit N] [--offset N]
 *   micro store databases
 *   micro store tables [--database D]
 *
 * Every command takes --database, --table (default micro and default) and, for admins,
 * --namespace; those that print data take --output json.
 */

interface ScopeFlags {
  database?: string;
  table?: string;
  namespace?: string;
  output?: string;
}

interface ReadFlags extends ScopeFlags {
  prefix?: boolean;
  suffix?: boolean;
  order?: string;
  limit?: string;
  offset?: string;
}

interface WriteFlags extends ScopeFlags {
  ttl?: string;
  metadata?: string[];
  string?: boolean;
}

interface ListFlags extends ScopeFlags {
  prefix?: string;
  suffix?: string;
  after?: string;
  order?: string;
  limit?: string;
  offset?: string;
}

export function registerStoreCommands(program: Command, ctx: CliContext): void {
  const store = program
    .command('store')
    .description('read, write, delete and list the records of the store')
    .addHelpText(
      'after',
      `
Examples:
  micro store write user:1 '{"name":"Alice"}' --ttl 1h --metadata owner=alice
  micro store read user:1
  micro store read user: --prefix --output json
  micro store list --prefix user: --limit 20
  micro store tables --database micro`,
    );

  scoped(store.command('read <key>'))
    .description('print the value at a key; with --prefix or --suffix, every record whose key matches')
    .option('--prefix', 'the key is a prefix')
    .option('--suffix', 'the key is a suffix')
    .option('--order <order>', 'asc (default) or desc')
    .option('--limit <n>', `at most this many records (default ${STORE_LIMITS.defaultLimit}, at most ${STORE_LIMITS.maxLimit})`)
    .option('--offset <n>', 'skip this many records')
    .action(async (key: string, opts: ReadFlags) => {
      const out = ctx.printer(opts.output);
      const scan = opts.prefix || opts.suffix;
      const request = {
        ...scope(opts),
        prefix: opts.prefix,
        suffix: opts.suffix,
        order: scan ? parseOrder(opts.order) : undefined,
        limit: scan ? parseCount('--limit', opts.limit, 1, STORE_LIMITS.maxLimit) : undefined,
        offset: scan ? parseCount('--offset', opts.offset, 0, STORE_LIMITS.maxOffset) : undefined,
      };
      const conn = connect(ctx.home, opts.namespace);
      const records = await storeOf(conn)
        .read(key, request)
        .catch((err: unknown) => {
          throw explainStore(conn, err);
        });
      if (!scan) {
        if (records.length === 0) throw notFound(conn, key, opts);
        printValue(out, records[0] as StoreRecord);
        return;
      }
      if (!out.json && records.length === 0) {
        out.info(`no records match "${key}" in ${where(conn, opts)}`);
        return;
      }
      out.table(RECORD_HEADERS, records.map((r) => recordRow(r)), records);
    });

  scoped(store.command('write <key> <value>'), false)
    .description('write a value (JSON, or else a string; - reads it from stdin)')
    .option('--ttl <duration>', 'expire after seconds, or 30s, 10m, 2h, 1d')
    .addOption(new Option('--metadata <key=value>', 'metadata of the record (repeat for more)').argParser(collect).default(undefined))
    .option('--string', 'write the value as a string even when it looks like JSON')
    .action(async (key: string, value: string, opts: WriteFlags) => {
      const out = ctx.printer();
      const text = value === '-' ? await readStdin(ctx, STORE_LIMITS.valueBytes * 6) : value;
      const record: StoreRecord = { key, value: parseValue(text, opts.string ?? false) };
      const metadata = parseMetadata(opts.metadata);
      if (metadata) record.metadata = metadata;
      const ttl = opts.ttl === undefined ? undefined : parseTtl(opts.ttl);
      const conn = connect(ctx.home, opts.namespace);
      await storeOf(conn)
        .write(record, { ...scope(opts), ttl })
        .catch((err: unknown) => {
          throw explainStore(conn, err);
        });
      out.info(`wrote ${key} in ${where(conn, opts)}${ttl ? `, expires in ${formatDuration(ttl * 1000)}` : ''}`);
    });

  scoped(store.command('delete <key>'), false)
    .description('delete the record at a key')
    .action(async (key: string, opts: ScopeFlags) => {
      const conn = connect(ctx.home, opts.namespace);
      await storeOf(conn)
        .delete(key, scope(opts))
        .catch((err: unknown) => {
          throw explainStore(conn, err);
        });
      ctx.printer().info(`deleted ${key} in ${where(conn, opts)}`);
    });

  scoped(store.command('list'))
    .description('list the keys of a table, in key order')
    .option('--prefix <prefix>', 'only keys that start with this')
    .option('--suffix <suffix>', 'only keys that end with this')
    .option('--after <key>', 'only keys after this one (the last key of the previous page)')
    .option('--order <order>', 'asc (default) or desc')
    .option('--limit <n>', `at most this many keys (default ${STORE_LIMITS.defaultLimit}, at most ${STORE_LIMITS.maxLimit})`)
    .option('--offset <n>', 'skip this many keys')
    .action(async (opts: ListFlags) => {
      const out = ctx.printer(opts.output);
      const request = {
        ...scope(opts),
        prefix: opts.prefix,
        suffix: opts.suffix,
        after: opts.after,
        order: parseOrder(opts.order),
        limit: parseCount('--limit', opts.limit, 1, STORE_LIMITS.maxLimit),
        offset: parseCount('--offset', opts.offset, 0, STORE_LIMITS.maxOffset),
      };
      const conn = connect(ctx.home, opts.namespace);
      const keys = await storeOf(conn)
        .list(request)
        .catch((err: unknown) => {
          throw explainStore(conn, err);
        });
      if (out.json) out.value(keys);
      else if (keys.length === 0) out.info(`no keys${opts.prefix || opts.suffix ? ' match' : ''} in ${where(conn, opts)}`);
      else for (const key of keys) out.line(printableKey(key));
    });

  store
    .command('databases')
    .description('the databases of the namespace that hold records')
    .option('--namespace <namespace>', "another namespace than the account's (admins)")
    .option('-o, --output <format>', 'text or json')
    .action(async (opts: ScopeFlags) => {
      const out = ctx.printer(opts.output);
      const conn = connect(ctx.home, opts.namespace);
      const names = await storeOf(conn)
        .databases({ namespace: opts.namespace, limit: STORE_LIMITS.maxLimit })
        .catch((err: unknown) => {
          throw explainStore(conn, err);
        });
      printNames(out, names, `no databases in namespace ${conn.namespace} — write a record with \`micro store write <key> <value>\``);
    });

  store
    .command('tables')
    .description('the tables of a database that hold records')
    .option('--database <database>', 'the database (default micro)')
    .option('--namespace <namespace>', "another namespace than the account's (admins)")
    .option('-o, --output <format>', 'text or json')
    .action(async (opts: ScopeFlags) => {
      const out = ctx.printer(opts.output);
      const conn = connect(ctx.home, opts.namespace);
      const names = await storeOf(conn)
        .tables({ namespace: opts.namespace, database: opts.database, limit: STORE_LIMITS.maxLimit })
        .catch((err: unknown) => {
          throw explainStore(conn, err);
        });
      printNames(out, names, `no tables in database ${opts.database ?? 'micro'} of namespace ${conn.namespace}`);
    });
}

/** The flags every store command shares. */
function scoped(command: Command, output = true): Command {
  command
    .option('--database <database>', 'the database (default micro)')
    .option('--table <table>', 'the table (default "default")')
    .option('--namespace <namespace>', "another namespace than the account's (admins)");
  if (output) command.option('-o, --output <format>', 'text or json');
  return command;
}

function scope(opts: ScopeFlags) {
  return { namespace: opts.namespace, database: opts.database, table: opts.table };
}

function storeOf(conn: Connection): RemoteStore {
  return new RemoteStore(conn.platform);
}

export const RECORD_HEADERS = ['KEY', 'VALUE', 'METADATA', 'EXPIRES'];

/** One row of a table of records: the value as compact JSON, the expiry as time left. */
export function recordRow(record: StoreRecord, now = Date.now()): string[] {
  const metadata = record.metadata ? Object.entries(record.metadata).map(([k, v]) => `${k}=${String(v)}`).join(',') : '';
  const expires = record.expiry === undefined ? '-' : `in ${formatDuration(Math.max(0, record.expiry - now))}`;
  return [printableKey(record.key), JSON.stringify(record.value), metadata, expires];
}

/** One record's value for people: a string as it is, anything else as pretty JSON. */
function printValue(out: Printer, record: StoreRecord): void {
  if (out.json) out.value(record);
  else if (typeof record.value === 'string') out.line(record.value);
  else out.value(record.value);
}

function printNames(out: Printer, names: string[], empty: string): void {
  if (out.json) out.value(names);
  else if (names.length === 0) out.info(empty);
  else for (const name of names) out.line(name);
}

/** A key on one line: quoted as JSON when it holds characters a terminal would act on. */
export function printableKey(key: string): string {
  return /\p{Cc}/u.test(key) ? JSON.stringify(key) : key;
}

/** The value of `write`: JSON when it parses (42, true, {"a":1}, "quoted"), else the text. */
export function parseValue(text: string, asString: boolean): unknown {
  if (asString) return text;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

/** `--ttl`: seconds, or a number with a unit (ms, s, m, h, d). */
export function parseTtl(value: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(value.trim());
  const seconds = m ? Number(m[1]) * { ms: 0.001, s: 1, m: 60, h: 3600, d: 86_400 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h' | 'd'] : NaN;
  if (!m || !Number.isFinite(seconds) || seconds <= 0 || seconds > STORE_LIMITS.maxTtlSeconds) {
    throw new UsageError(`--ttl must be a duration like 60 (seconds), 30s, 10m, 2h or 1d, up to ten years, not "${value}"`);
  }
  return seconds;
}

/** `--metadata k=v` pairs (values are strings). */
export function parseMetadata(pairs: string[] | undefined): Record<string, MetadataValue> | undefined {
  if (!pairs || pairs.length === 0) return undefined;
  const entries: [string, string][] = [];
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new UsageError(`--metadata takes key=value, not "${pair}"`);
    entries.push([pair.slice(0, eq), pair.slice(eq + 1)]);
  }
  if (entries.length > STORE_LIMITS.metadataEntries) throw new UsageError(`--metadata may be given at most ${STORE_LIMITS.metadataEntries} times`);
  // fromEntries defines own properties: a key named __proto__ stays a key (the server refuses it)
  return Object.fromEntries(entries);
}

export function parseOrder(value: string | undefined): 'asc' | 'desc' | undefined {
  if (value === undefined || value === 'asc' || value === 'desc') return value;
  throw new UsageError(`--order must be asc or desc, not "${value}"`);
}

export function parseCount(flag: string, value: string | undefined, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || n < min || n > max) throw new UsageError(`${flag} must be a whole number from ${min} to ${max}, not "${value}"`);
  return n;
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** stdin as text, refused beyond `max` bytes so that a wrong pipe cannot fill memory. */
async function readStdin(ctx: CliContext, max: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of ctx.io.stdin) {
    const b = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
    size += b.length;
    if (size > max) throw new UsageError(`the value on stdin is larger than a record may be (${STORE_LIMITS.valueBytes} bytes as JSON) — use the blob store for large data`);
    chunks.push(b);
  }
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

function where(conn: Connection, opts: ScopeFlags): string {
  return `${opts.database ?? 'micro'}/${opts.table ?? 'default'} (namespace ${opts.namespace ?? conn.namespace})`;
}

function notFound(conn: Connection, key: string, opts: ScopeFlags): CliError {
  return new CliError(`no record at "${printableKey(key)}" in ${where(conn, opts)} — see \`micro store list\``);
}

/** Errors of the store service, for people: a missing store service says what it means. */
function explainStore(conn: Connection, err: unknown): CliError {
  if (err instanceof MicroError && err.code === 404 && /store/.test(err.detail)) {
    return new CliError(`the server has no store service (${err.detail}) — upgrade micro server`);
  }
  return conn.explain(err);
}
