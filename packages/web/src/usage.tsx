import { useState } from 'preact/hooks';
import { call, currentSession } from './api';
import { count, dollars } from './money';
import { Bar } from './quotas';
import { Problem, Section, useLoad, useSubmit } from './ui';

/** usage.Read's answer (packages/platform/src/usage/definition.ts). */
interface Figures {
  calls: number;
  ok: number;
  failed: number;
  free: number;
  /** units (10^-6 USD) */
  charged: number;
}
interface UsageRow extends Figures {
  service: string;
  endpoint: string;
  day?: string;
  /** by key: the API key's id, "" for calls made with a token */
  key?: string;
}
interface UsageRead {
  namespace: string;
  payer: string;
  from: string;
  to: string;
  rows: UsageRow[];
  totals: Figures;
  quotas: { service: string; endpoint: string; price: number; freeQuota: number; used: number; left: number }[];
}
type By = 'endpoint' | 'day' | 'key';

/** What the page asks for: a month, or a range of days; the staff may name a namespace. */
export interface UsageFilter {
  period?: string;
  from?: string;
  to?: string;
  namespace?: string;
}

/** The current month, UTC (the billing periods are UTC months). */
function thisMonth(now = new Date()): string {
  return now.toISOString().slice(0, 7);
}

/**
 * The filter of the form: a month (`YYYY-MM`) or both days; a namespace only when typed.
 * The usage service checks it again (a 400 names the field).
 */
export function filterOf(form: { mode: 'month' | 'days'; period: string; from: string; to: string; namespace: string }): UsageFilter {
  const out: UsageFilter = form.mode === 'month' ? { period: form.period || thisMonth() } : { from: form.from, to: form.to };
  if (form.namespace.trim()) out.namespace = form.namespace.trim();
  return out;
}

/** Saves `text` as a file the browser downloads (a blob: URL, no request to the server). */
function download(filename: string, text: string): void {
  const url = URL.createObjectURL(new Blob([text], { type: 'text/csv;charset=utf-8' }));
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

function lead(by: By, row: UsageRow): string {
  if (by === 'day') return row.day ?? '';
  return row.key ? row.key : '(token)';
}

function CallsTable({ read, by }: { read: UsageRead; by: By }) {
  const first = by === 'day' ? 'Day' : by === 'key' ? 'API key' : undefined;
  const cells = (f: Figures) => [count(f.calls), count(f.ok), count(f.failed), count(f.free), dollars(f.charged)].map((v, i) => (
    <td key={i} class="num nowrap">
      {v}
    </td>
  ));
  return (
    <table class="list" aria-label="usage">
      <thead>
        <tr>
          {first ? <th>{first}</th> : null}
          <th>API</th>
          <th>Endpoint</th>
          <th class="num">Calls</th>
          <th class="num">OK</th>
          <th class="num">Failed</th>
          <th class="num">Free</th>
          <th class="num">Charged</th>
        </tr>
      </thead>
      <tbody>
        {read.rows.map((r) => (
          <tr key={`${r.service}.${r.endpoint} ${r.day ?? ''} ${r.key ?? ''}`} data-row={`${r.service}.${r.endpoint}`}>
            {first ? <td class="nowrap">{lead(by, r)}</td> : null}
            <td>{r.service}</td>
            <td>{r.endpoint}</td>
            {cells(r)}
          </tr>
        ))}
        {read.rows.length === 0 ? (
          <tr>
            <td colSpan={first ? 8 : 7} class="muted">
              No metered calls in this period.
            </td>
          </tr>
        ) : null}
      </tbody>
      <tfoot>
        <tr data-row="total">
          {first ? <td /> : null}
          <th>Total</th>
          <td />
          {cells(read.totals)}
        </tr>
      </tfoot>
    </table>
  );
}

function QuotaTable({ read }: { read: UsageRead }) {
  return (
    <table class="list" aria-label="free quotas">
      <thead>
        <tr>
          <th>API</th>
          <th>Endpoint</th>
          <th class="num">Price</th>
          <th class="num">Free a month</th>
          <th class="num">Used</th>
          <th class="num">Left</th>
          <th />
        </tr>
      </thead>
      <tbody>
        {read.quotas.map((q) => (
          <tr key={`${q.service}.${q.endpoint}`} data-quota={`${q.service}.${q.endpoint}`}>
            <td>{q.service}</td>
            <td>{q.endpoint}</td>
            <td class="num nowrap">{dollars(q.price)} a call</td>
            <td class="num">{count(q.freeQuota)}</td>
            <td class="num">{count(q.used)}</td>
            <td class="num">{count(q.left)}</td>
            <td class="bar-cell">{q.freeQuota > 0 ? <Bar title={`free calls of ${q.service}.${q.endpoint}`} used={q.used} limit={q.freeQuota} format={count} /> : null}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/**
 * usage.Read and usage.Export of the caller's namespace (the staff: any): calls, charges and
 * free quota left per API and endpoint, per day or per API key, over a month or a range of
 * days, and the calls themselves as a CSV download.
 */
export function Usage() {
  const staff = currentSession()?.account.issuer === 'micro';
  const [form, setForm] = useState({ mode: 'month' as 'month' | 'days', period: thisMonth(), from: '', to: '', namespace: '' });
  const [filter, setFilter] = useState<UsageFilter>(() => filterOf(form));
  const [by, setBy] = useState<By>('endpoint');
  // the answer keeps the grouping it was asked with: until the next one arrives, the table
  // shows the last answer under its own columns, never old rows under the new header
  const read = useLoad(async () => ({ ...(await call<UsageRead>('usage', 'Read', { ...filter, by })), by }), [JSON.stringify(filter), by]);
  const csv = useSubmit();
  const [truncated, setTruncated] = useState(false);
  const value = read.value;
  const set = (patch: Partial<typeof form>) => setForm({ ...form, ...patch });
  const exportCsv = () =>
    csv.run(async () => {
      const r = await call<{ filename: string; csv: string; truncated: boolean }>('usage', 'Export', filter);
      setTruncated(r.truncated);
      download(r.filename, r.csv);
    });
  return (
    <Section
      title={`Usage${value ? ` of ${value.namespace}` : ''}`}
      actions={
        <>
          <button onClick={read.reload}>Refresh</button>{' '}
          <button onClick={exportCsv} disabled={csv.busy}>
            {csv.busy ? 'Exporting…' : 'Download CSV'}
          </button>
        </>
      }
    >
      <form
        class="usage-filters"
        aria-label="usage filters"
        onSubmit={(e) => {
          e.preventDefault();
          setFilter(filterOf(form));
        }}
      >
        <label>
          Period
          <select name="mode" value={form.mode} onChange={(e) => set({ mode: e.currentTarget.value as 'month' | 'days' })}>
            <option value="month">a month</option>
            <option value="days">a range of days</option>
          </select>
        </label>
        {form.mode === 'month' ? (
          <label>
            Month (UTC)
            <input name="period" type="month" value={form.period} onInput={(e) => set({ period: e.currentTarget.value })} />
          </label>
        ) : (
          <>
            <label>
              From
              <input name="from" type="date" required value={form.from} onInput={(e) => set({ from: e.currentTarget.value })} />
            </label>
            <label>
              To
              <input name="to" type="date" required value={form.to} onInput={(e) => set({ to: e.currentTarget.value })} />
            </label>
          </>
        )}
        {staff ? (
          <label>
            Namespace
            <input name="namespace" placeholder="micro" value={form.namespace} onInput={(e) => set({ namespace: e.currentTarget.value })} />
          </label>
        ) : null}
        <button type="submit">Show</button>
      </form>
      <div class="row" role="group" aria-label="rows per">
        Rows per
        {(['endpoint', 'day', 'key'] as const).map((b) => (
          <label class="check" key={b}>
            <input type="radio" name="by" value={b} checked={by === b} onChange={() => setBy(b)} /> {b === 'key' ? 'API key' : b}
          </label>
        ))}
      </div>
      <Problem error={read.error ?? csv.error} />
      {truncated ? <p class="muted">The CSV holds the first calls only: more matched. Choose fewer days.</p> : null}
      {value ? (
        <>
          <p class="muted">
            {value.from} to {value.to} (UTC){value.payer && value.payer !== value.namespace ? `, paid by ${value.payer}` : ''}
          </p>
          <CallsTable read={value} by={value.by} />
          <h3>Free quotas this month</h3>
          {value.quotas.length > 0 ? <QuotaTable read={value} /> : <p class="muted">No free quota was used this month.</p>}
        </>
      ) : null}
      <p class="muted">Calls are counted when they pass the gateway; only successful calls beyond the free quota are charged. Prices are on the Services page.</p>
    </Section>
  );
}
