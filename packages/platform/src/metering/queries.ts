import type { CallRecord, QuotaRow, UsageFilter, UsageRow } from './storage.js';

/**
 * The reads of the usage service over `usage_calls`, in the SQL both engines speak
 * (placeholders `?`; the PostgreSQL engine numbers them with `numbered`). Values always
 * go in the parameters; the only names in the text are the table's and the columns'.
 */

export interface Query {
  sql: string;
  params: unknown[];
}

/** `?` → `$1`, `$2`… (no `?` appears in these texts except as a placeholder) */
export function numbered(sql: string): string {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
}

function where(f: UsageFilter): Query {
  const parts = ['namespace = ?', 'day >= ?', 'day <= ?'];
  const params: unknown[] = [f.namespace, f.from, f.to];
  if (f.service !== undefined) {
    parts.push('service = ?');
    params.push(f.service);
  }
  if (f.endpoint !== undefined) {
    parts.push('endpoint = ?');
    params.push(f.endpoint);
  }
  if (f.key !== undefined) {
    parts.push('key_id = ?');
    params.push(f.key);
  }
  return { sql: parts.join(' AND '), params };
}

const GROUPS = { endpoint: '', day: ', day', key: ', key_id' } as const;

/** calls, successes, failures, free calls and units charged, grouped by endpoint (and day or key) */
export function usageQuery(table: string, f: UsageFilter, by: keyof typeof GROUPS): Query {
  const w = where(f);
  const extra = GROUPS[by];
  return {
    sql: `SELECT service, endpoint${extra}, COUNT(*) AS calls, SUM(CASE WHEN outcome = 'ok' THEN 1 ELSE 0 END) AS ok,
      SUM(free) AS free, SUM(charged) AS charged FROM ${table} WHERE ${w.sql}
      GROUP BY service, endpoint${extra} ORDER BY service, endpoint${extra}`,
    params: w.params,
  };
}

export function callsQuery(table: string, f: UsageFilter, limit: number): Query {
  const w = where(f);
  return { sql: `SELECT * FROM ${table} WHERE ${w.sql} ORDER BY at, request_id LIMIT ?`, params: [...w.params, limit] };
}

/** the free calls a payer used in a period per endpoint, with the price and quota of its latest call there */
export function quotasQuery(table: string, payer: string, period: string): Query {
  return {
    sql: `SELECT c.service, c.endpoint, SUM(c.free) AS used,
      (SELECT l.price FROM ${table} l WHERE l.payer = c.payer AND l.period = c.period AND l.service = c.service AND l.endpoint = c.endpoint ORDER BY l.at DESC, l.request_id DESC LIMIT 1) AS price,
      (SELECT l.free_quota FROM ${table} l WHERE l.payer = c.payer AND l.period = c.period AND l.service = c.service AND l.endpoint = c.endpoint ORDER BY l.at DESC, l.request_id DESC LIMIT 1) AS free_quota
      FROM ${table} c WHERE c.payer = ? AND c.period = ? GROUP BY c.payer, c.period, c.service, c.endpoint ORDER BY c.service, c.endpoint`,
    params: [payer, period],
  };
}

type Num = number | string | null;

export interface UsageRowRaw {
  service: string;
  endpoint: string;
  day?: string;
  key_id?: string;
  calls: Num;
  ok: Num;
  free: Num;
  charged: Num;
}

/** Rows to objects (PostgreSQL hands sums over as strings) */
export function usageRowOf(r: UsageRowRaw): UsageRow {
  const calls = Number(r.calls ?? 0);
  const ok = Number(r.ok ?? 0);
  const row: UsageRow = { service: r.service, endpoint: r.endpoint, calls, ok, failed: calls - ok, free: Number(r.free ?? 0), charged: Number(r.charged ?? 0) };
  if (r.day !== undefined) row.day = r.day;
  if (r.key_id !== undefined) row.key = r.key_id;
  return row;
}

export interface QuotaRowRaw {
  service: string;
  endpoint: string;
  used: Num;
  price: Num;
  free_quota: Num;
}

export function quotaRowOf(r: QuotaRowRaw): QuotaRow {
  return { service: r.service, endpoint: r.endpoint, used: Number(r.used ?? 0), price: Number(r.price ?? 0), freeQuota: Number(r.free_quota ?? 0) };
}

export interface CallRowRaw {
  request_id: string;
  at: Num;
  period: string;
  day: string;
  payer: string;
  namespace: string;
  account: string;
  key_id: string;
  home: string;
  service: string;
  endpoint: string;
  price: Num;
  free_quota: Num;
  free: Num | boolean;
  charged: Num;
  outcome: string;
  code: Num;
  idem_key: string | null;
  posting: string | null;
}

export function callOf(r: CallRowRaw): CallRecord {
  return {
    requestId: r.request_id,
    at: Number(r.at),
    period: r.period,
    day: r.day,
    payer: r.payer,
    namespace: r.namespace,
    account: r.account,
    keyId: r.key_id,
    home: r.home,
    service: r.service,
    endpoint: r.endpoint,
    price: Number(r.price),
    freeQuota: Number(r.free_quota),
    free: Number(r.free) === 1,
    charged: Number(r.charged),
    outcome: r.outcome === 'ok' ? 'ok' : 'error',
    code: Number(r.code),
    idemKey: r.idem_key,
    posting: r.posting,
  };
}

/**
 * `CREATE TABLE usage_calls` in a dialect's types (one definition for both engines).
 * `posting`: `UNIQUE` where each charged call has a posting of its own (PostgreSQL), ''
 * where the calls of a group commit share one (SQLite).
 */
export function callsTable(t: { text: string; int: string; flag: string }, suffix = '', posting = 'UNIQUE'): string {
  return `CREATE TABLE usage_calls (
  request_id ${t.text} PRIMARY KEY, at ${t.int} NOT NULL, period ${t.text} NOT NULL, day ${t.text} NOT NULL,
  payer ${t.text} NOT NULL, namespace ${t.text} NOT NULL, account ${t.text} NOT NULL, key_id ${t.text} NOT NULL,
  home ${t.text} NOT NULL, service ${t.text} NOT NULL, endpoint ${t.text} NOT NULL,
  price ${t.int} NOT NULL, free_quota ${t.int} NOT NULL, free ${t.flag} NOT NULL, charged ${t.int} NOT NULL,
  outcome ${t.text} NOT NULL, code INTEGER NOT NULL, idem_key ${t.text}, idem ${t.text}, posting ${t.text} ${posting}
)${suffix};
CREATE INDEX usage_calls_namespace ON usage_calls (namespace, day);
CREATE INDEX usage_calls_idem ON usage_calls (idem) WHERE idem IS NOT NULL;`;
}

/** The columns of a record, in the order of the INSERTs of both engines */
export const CALL_COLUMNS = 'request_id, at, period, day, payer, namespace, account, key_id, home, service, endpoint, price, free_quota, free, charged, outcome, code, idem_key, idem, posting';

export function callValues(r: CallRecord, idem: string | undefined): unknown[] {
  return [r.requestId, r.at, r.period, r.day, r.payer, r.namespace, r.account, r.keyId, r.home, r.service, r.endpoint, r.price, r.freeQuota, r.free ? 1 : 0, r.charged, r.outcome, r.code, r.idemKey, idem ?? null, r.posting];
}
