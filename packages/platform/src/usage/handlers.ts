import { errors, type Context, type Handlers } from '@micro/sdk';
import { namespaceFor } from '@micro/server/engine';
import { parsePeriod, periodOf } from '../billing/periods.js';
import type { CallRecord, MeterEngine, UsageFilter, UsageRow } from '../metering/storage.js';
import { USAGE_LIMITS, type usageService } from './definition.js';

const ID = 'usage';
const DAY_MS = 86_400_000;
const NAMESPACE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** the CSV goes back in one message: under the RPC's 4 MiB frame with room for the envelope */
const MAX_CSV_BYTES = 3 * 1024 * 1024;
const CSV_HEADER = 'request_id,at,namespace,account,key,service,endpoint,outcome,code,free,price,charged';

export interface UsageHandlerOptions {
  /** where the records are (the meter's engine) */
  engine: Pick<MeterEngine, 'usage' | 'quotas' | 'calls'>;
  /** who pays for a namespace (hub.payerOf) */
  payerOf(namespace: string): Promise<string>;
  /** the billing clock (the current period) */
  clock: () => number;
  /**
   * the namespace a request reads: its own, another only for admins of micro (default
   * namespaceFor, the core services' rule)
   */
  namespace?: (ctx: Context, asked: string | undefined) => string;
}

interface FilterInput {
  namespace?: string;
  period?: string;
  from?: string;
  to?: string;
  service?: string;
  endpoint?: string;
  key?: string;
}

/**
 * Read and Export over the records of the meter: a tenant reads its own namespace, admins
 * of micro any. The figures are sums of the same rows the ledger's usage postings are
 * made from (charged = what the ledger took for them).
 */
export function usageHandlers(options: UsageHandlerOptions): Handlers<typeof usageService> {
  const scope = options.namespace ?? namespaceFor;
  const filterOf = (req: FilterInput, ctx: Context): UsageFilter => {
    const namespace = scope(ctx, req.namespace);
    if (!NAMESPACE.test(namespace)) throw errors.BadRequest(ID, 'namespace: letters, digits, ".", "_" and "-", at most 64');
    const { from, to } = rangeOf(req, options.clock());
    return { namespace, from, to, service: req.service, endpoint: req.endpoint, key: req.key };
  };
  return {
    Read: async (req, ctx) => {
      const filter = filterOf(req, ctx);
      const payer = await options.payerOf(filter.namespace);
      const [rows, quotas] = await Promise.all([options.engine.usage(filter, req.by ?? 'endpoint'), options.engine.quotas(payer, periodOf(options.clock()).id)]);
      if (rows.length > USAGE_LIMITS.rows) throw errors.BadRequest(ID, `more than ${USAGE_LIMITS.rows} rows: narrow the filter (a shorter range, a service, an endpoint)`);
      return {
        namespace: filter.namespace,
        payer,
        from: filter.from,
        to: filter.to,
        rows,
        totals: totalsOf(rows),
        quotas: quotas.map((q) => ({ ...q, left: Math.max(0, q.freeQuota - q.used) })),
      };
    },
    Export: async (req, ctx) => {
      const filter = filterOf(req, ctx);
      const calls = await options.engine.calls(filter, USAGE_LIMITS.csvRows + 1);
      const { csv, truncated } = csvOf(calls);
      return { filename: `usage-${filter.namespace}-${filter.from}-${filter.to}.csv`, csv, truncated };
    },
  };
}

/** The inclusive days of a filter: a period (default the current one), or from and to; anything else a 400 naming the field. */
export function rangeOf(req: FilterInput, now: number): { from: string; to: string } {
  const ranged = req.from !== undefined || req.to !== undefined;
  if (ranged && req.period !== undefined) throw errors.BadRequest(ID, 'period: give a period or from and to, not both');
  if (!ranged) {
    const p = req.period === undefined ? periodOf(now) : checkedPeriod(req.period);
    return { from: dayOf(p.start), to: dayOf(p.end - 1) };
  }
  if (req.from === undefined || req.to === undefined) throw errors.BadRequest(ID, `${req.from === undefined ? 'from' : 'to'}: from and to go together (YYYY-MM-DD, inclusive)`);
  const from = checkedDay('from', req.from);
  const to = checkedDay('to', req.to);
  if (to < from) throw errors.BadRequest(ID, `to: ${req.to} is before from ${req.from}`);
  const days = (to - from) / DAY_MS + 1;
  if (days > USAGE_LIMITS.days) throw errors.BadRequest(ID, `to: at most ${USAGE_LIMITS.days} days from from (${days} asked)`);
  return { from: req.from, to: req.to };
}

function checkedPeriod(period: string): { start: number; end: number } {
  try {
    return parsePeriod(period);
  } catch {
    throw errors.BadRequest(ID, `period: ${JSON.stringify(period.slice(0, 20))} is not a month YYYY-MM`);
  }
}

/** ms of a real calendar day `YYYY-MM-DD` (2027-02-30 is none) */
function checkedDay(field: string, day: string): number {
  const ms = /^\d{4}-\d{2}-\d{2}$/.test(day) ? Date.parse(`${day}T00:00:00.000Z`) : NaN;
  if (!Number.isFinite(ms) || dayOf(ms) !== day) throw errors.BadRequest(ID, `${field}: ${JSON.stringify(day.slice(0, 20))} is not a day YYYY-MM-DD`);
  return ms;
}

function dayOf(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

function totalsOf(rows: UsageRow[]): { calls: number; ok: number; failed: number; free: number; charged: number } {
  const t = { calls: 0, ok: 0, failed: 0, free: 0, charged: 0 };
  for (const r of rows) {
    t.calls += r.calls;
    t.ok += r.ok;
    t.failed += r.failed;
    t.free += r.free;
    t.charged += r.charged;
  }
  return t;
}

/**
 * One line a call; values that a spreadsheet would take for a formula (= + - @ at the
 * start) get a leading `'`, and any value with a comma, quote or line break is quoted.
 */
export function csvOf(calls: CallRecord[]): { csv: string; truncated: boolean } {
  const lines = [CSV_HEADER];
  let bytes = CSV_HEADER.length + 1;
  let truncated = calls.length > USAGE_LIMITS.csvRows;
  for (const c of calls.slice(0, USAGE_LIMITS.csvRows)) {
    const line = [c.requestId, new Date(c.at).toISOString(), c.namespace, c.account, c.keyId, c.service, c.endpoint, c.outcome, c.code, c.free ? 1 : 0, c.price, c.charged].map(cell).join(',');
    bytes += Buffer.byteLength(line) + 1;
    if (bytes > MAX_CSV_BYTES) {
      truncated = true;
      break;
    }
    lines.push(line);
  }
  return { csv: `${lines.join('\n')}\n`, truncated };
}

function cell(value: string | number): string {
  if (typeof value === 'number') return String(value);
  const safe = /^[=+\-@\t\r]/.test(value) ? `'${value}` : value;
  return /[",\n\r]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}
