import type { TypedClient } from '@micro/sdk';
import { formatDollars, type usageService } from '@micro/platform/client';
import { UsageError } from '../output.js';

/**
 * What `micro usage` asks and prints, apart from the call itself (tested alone): the
 * filter from the flags, and the tables of a usage.Read answer.
 */

type Usage = TypedClient<typeof usageService>;
export type UsageRead = Awaited<ReturnType<Usage['Read']>>;
export type UsageFilter = Parameters<Usage['Read']>[0];
export type UsageBy = 'endpoint' | 'day' | 'key';

export interface UsageFlags {
  namespace?: string;
  period?: string;
  from?: string;
  to?: string;
  by?: string;
  service?: string;
  endpoint?: string;
  key?: string;
}

const PERIOD = /^\d{4}-(0[1-9]|1[0-2])$/;
const DAY = /^\d{4}-\d{2}-\d{2}$/;

/** A real calendar day: 2026-02-30 is not one. */
function isDay(text: string): boolean {
  if (!DAY.test(text)) return false;
  const d = new Date(`${text}T00:00:00Z`);
  return !Number.isNaN(d.getTime()) && d.toISOString().slice(0, 10) === text;
}

/** The request of usage.Read from the flags; a wrong flag is a UsageError naming it. */
export function usageFilter(flags: UsageFlags): UsageFilter & { by: UsageBy } {
  const by = (flags.by ?? 'endpoint') as UsageBy;
  if (!['endpoint', 'day', 'key'].includes(by)) throw new UsageError(`--by must be endpoint, day or key, not ${JSON.stringify(String(flags.by).slice(0, 40))}`);
  if (flags.period !== undefined && !PERIOD.test(flags.period)) throw new UsageError(`--period must be a month YYYY-MM (e.g. 2026-01), not ${JSON.stringify(flags.period.slice(0, 40))}`);
  for (const flag of ['from', 'to'] as const) {
    const v = flags[flag];
    if (v !== undefined && !isDay(v)) throw new UsageError(`--${flag} must be a day YYYY-MM-DD (UTC), not ${JSON.stringify(v.slice(0, 40))}`);
  }
  if (flags.period !== undefined && (flags.from !== undefined || flags.to !== undefined)) throw new UsageError('give --period or --from/--to, not both');
  if ((flags.from === undefined) !== (flags.to === undefined)) throw new UsageError('--from and --to go together: the first and the last day, inclusive');
  if (flags.from !== undefined && flags.to !== undefined && flags.from > flags.to) throw new UsageError(`--from ${flags.from} is after --to ${flags.to}`);
  const out: UsageFilter & { by: UsageBy } = { by };
  for (const k of ['namespace', 'period', 'from', 'to', 'service', 'endpoint', 'key'] as const) {
    const v = flags[k];
    if (v !== undefined) out[k] = v;
  }
  return out;
}

export function count(n: number): string {
  return n.toLocaleString('en-US');
}

/** the key column: an API key's id, or the calls made with a token (no key) */
export function keyLabel(key: string | undefined): string {
  return key ? key : '(token)';
}

export function usageHeading(r: UsageRead): string {
  const payer = r.payer && r.payer !== r.namespace ? ` (paid by ${r.payer})` : '';
  return `usage of namespace ${r.namespace}${payer}, ${r.from} to ${r.to} (UTC)`;
}

/** The table of calls: per endpoint, with DAY or KEY first when asked; totals last. */
export function usageTable(r: UsageRead, by: UsageBy): { headers: string[]; rows: string[][] } {
  const lead = by === 'day' ? ['DAY'] : by === 'key' ? ['KEY'] : [];
  const headers = [...lead, 'SERVICE', 'ENDPOINT', 'CALLS', 'OK', 'FAILED', 'FREE', 'CHARGED'];
  const figures = (x: { calls: number; ok: number; failed: number; free: number; charged: number }) => [count(x.calls), count(x.ok), count(x.failed), count(x.free), formatDollars(x.charged)];
  const rows = r.rows.map((row) => [...(by === 'day' ? [row.day ?? ''] : by === 'key' ? [keyLabel(row.key)] : []), row.service, row.endpoint, ...figures(row)]);
  rows.push([...lead.map(() => ''), 'TOTAL', '', ...figures(r.totals)]);
  return { headers, rows };
}

/** The free quotas of the current period, per endpoint the payer called. */
export function quotaTable(r: UsageRead): { headers: string[]; rows: string[][] } {
  return {
    headers: ['SERVICE', 'ENDPOINT', 'PRICE', 'FREE/MONTH', 'USED', 'LEFT'],
    rows: r.quotas.map((q) => [q.service, q.endpoint, `${formatDollars(q.price)} a call`, count(q.freeQuota), count(q.used), count(q.left)]),
  };
}
