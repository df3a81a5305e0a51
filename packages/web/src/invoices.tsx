import { call } from './api';
import { Problem, Section, useLoad, useSubmit } from './ui';

/** invoices.List's rows and invoices.Read's invoice (packages/platform/src/invoices/definition.ts). */
interface Summary {
  number: string;
  payer: string;
  period: string;
  issuedAt: number;
  buyer: string;
  total: number;
  amountDue: number;
}
interface Line {
  kind: string;
  period: string;
  description: string;
  amount: number;
  calls?: number;
  seats?: number;
  unitPrice?: number;
}
interface Invoice extends Omit<Summary, 'buyer'> {
  periodStart: number;
  periodEnd: number;
  seller: { name: string; lines: string[] };
  buyer: { name: string; lines: string[] };
  lines: Line[];
  subtotal: number;
  taxRate: number;
  taxBase: number;
  tax: number;
  credits: number;
  payments: number;
  balance: number;
}
interface Rendered {
  filename: string;
  contentType: string;
  encoding: 'utf8' | 'base64';
  content: string;
}

const UNITS = 1_000_000n;

/** Units (10^-6 USD) as the invoices print them: `$1,234.50`, `$0.000100`, `-$5.00` (exact: bigint, no float). */
export function dollars(units: number): string {
  const abs = BigInt(Math.abs(units));
  const cents = (abs % UNITS).toString().padStart(6, '0');
  return `${units < 0 ? '-' : ''}$${(abs / UNITS).toLocaleString('en-US')}.${cents.endsWith('0000') ? cents.slice(0, 2) : cents}`;
}

const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);

/** Saves a rendering the service answered as a file (a link to a blob: nothing leaves the page but the download). */
function save(file: Rendered): void {
  const bytes = file.encoding === 'base64' ? Uint8Array.from(atob(file.content), (c) => c.charCodeAt(0)) : new TextEncoder().encode(file.content);
  const url = URL.createObjectURL(new Blob([bytes], { type: file.contentType }));
  const a = document.createElement('a');
  a.href = url;
  a.download = file.filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

function List() {
  const list = useLoad(() => call<{ payer?: string; invoices: Summary[] }>('invoices', 'List', {}));
  const rows = list.value?.invoices ?? [];
  return (
    <Section title="Invoices" actions={<button onClick={list.reload}>Refresh</button>}>
      <Problem error={list.error} />
      {list.value && !rows.length ? <p class="muted">No invoices yet: one is issued for each month with charges, once it ends.</p> : null}
      {rows.length ? (
        <table class="list" aria-label="invoices">
          <thead>
            <tr>
              <th>Number</th>
              <th>Period</th>
              <th>Issued</th>
              <th>Buyer</th>
              <th class="num">Total</th>
              <th class="num">Due</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((i) => (
              <tr key={i.number}>
                <td>
                  <a href={`#/invoices/${encodeURIComponent(i.number)}`}>{i.number}</a>
                </td>
                <td>{i.period}</td>
                <td class="nowrap">{day(i.issuedAt)}</td>
                <td>{i.buyer}</td>
                <td class="num nowrap">{dollars(i.total)}</td>
                <td class="num nowrap">{dollars(i.amountDue)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </Section>
  );
}

function quantity(l: Line): string {
  if (l.calls !== undefined) return `${l.calls.toLocaleString('en-US')} call${l.calls === 1 ? '' : 's'}`;
  return l.seats !== undefined ? `${l.seats} seat${l.seats === 1 ? '' : 's'}` : '';
}

function Detail({ number }: { number: string }) {
  const read = useLoad(() => call<{ invoice: Invoice }>('invoices', 'Read', { number }), [number]);
  const download = useSubmit();
  const i = read.value?.invoice;
  const get = (format: 'html' | 'pdf') => download.run(async () => save(await call<Rendered>('invoices', 'Render', { number, format })));
  const actions = (
    <>
      <a href="#/invoices">All invoices</a> <button onClick={() => get('html')} disabled={download.busy || !i}>Download HTML</button>{' '}
      <button onClick={() => get('pdf')} disabled={download.busy || !i}>Download PDF</button> <button onClick={() => print()} disabled={!i}>Print</button>
    </>
  );
  const totals: [string, number, boolean?][] = i
    ? [
        ['Subtotal', i.subtotal],
        [`Tax ${i.taxRate / 100} % of ${dollars(i.taxBase)}`, i.tax],
        ['Total', i.total, true],
        ['Credits and refunds', i.credits],
        ['Payments received', i.payments],
        ['Prepaid balance', i.balance],
        ['Amount due', i.amountDue, true],
      ]
    : [];
  return (
    <Section title={`Invoice ${number}`} actions={actions}>
      <Problem error={read.error ?? download.error} />
      {i ? (
        <div class="invoice-view">
          <p>
            <strong>{i.period}</strong> ({day(i.periodStart)} to {day(i.periodEnd - 1)}), issued {day(i.issuedAt)} by {i.seller.name} to{' '}
            <strong>{i.buyer.name}</strong>
          </p>
          <table class="list" aria-label="invoice lines">
            <thead>
              <tr>
                <th>Kind</th>
                <th>Description</th>
                <th>Period</th>
                <th class="num">Quantity</th>
                <th class="num">Unit price</th>
                <th class="num">Amount</th>
              </tr>
            </thead>
            <tbody>
              {i.lines.map((l, n) => (
                <tr key={n} data-kind={l.kind}>
                  <td>{l.kind}</td>
                  <td>{l.description}</td>
                  <td>{l.period}</td>
                  <td class="num nowrap">{quantity(l)}</td>
                  <td class="num nowrap">{l.unitPrice === undefined ? '' : dollars(l.unitPrice)}</td>
                  <td class="num nowrap">{dollars(l.amount)}</td>
                </tr>
              ))}
            </tbody>
          </table>
          <table class="list totals" aria-label="totals">
            <tbody>
              {totals.map(([label, amount, strong]) => (
                <tr key={label} class={strong ? 'strong' : ''}>
                  <td>{label}</td>
                  <td class="num nowrap">{dollars(amount)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
    </Section>
  );
}

/** The payer's invoices (`#/invoices`), and one of them (`#/invoices/<number>`): its lines, totals and downloads. */
export function Invoices({ sub }: { sub: string }) {
  return sub ? <Detail number={sub} /> : <List />;
}
