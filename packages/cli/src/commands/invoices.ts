import { writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { createClient, MicroError, type TypedClient } from '@micro/sdk';
import { formatDollars, invoicesService, INVOICES_LIMITS } from '@micro/platform/client';
import { connect, type Connection } from '../connect.js';
import type { CliContext } from '../context.js';
import { CliError, sanitize, UsageError, type Printer } from '../output.js';

/**
 * `micro invoices`: the invoices of the payer of the current login (a customer's own;
 * the staff, admins of micro: any), through the invoices service.
 *
 *   micro invoices [--payer p] [--period YYYY-MM] [--limit n] [--after c] [-o json]
 *   micro invoices show <number> [-o json]
 *   micro invoices download <number> [--pdf] [-o file]    (default ./<number>.html|.pdf; -o - to stdout)
 *   micro invoices issue <YYYY-MM> [--payer p] [-o json]  (staff: now, idempotent)
 */

type Invoices = TypedClient<typeof invoicesService>;
type Invoice = Awaited<ReturnType<Invoices['Read']>>['invoice'];
type Summary = Awaited<ReturnType<Invoices['List']>>['invoices'][number];

const OUTPUT = ['-o, --output <format>', 'text or json'] as const;

export function registerInvoicesCommands(program: Command, ctx: CliContext): void {
  const invoices = program.command('invoices').description('your invoices: list (default), show, download (HTML or PDF); staff: any payer, issue');

  invoices
    .command('list', { isDefault: true })
    .description('list invoices, newest first')
    .option('--payer <payer>', 'staff: the invoices of this payer (a customer id, or ns.<namespace>)')
    .option('--period <YYYY-MM>', 'only this month')
    .option('--limit <n>', `at most this many (1–${INVOICES_LIMITS.page}, default ${INVOICES_LIMITS.page})`)
    .option('--after <cursor>', 'the page after this cursor (printed under a full page)')
    .option(...OUTPUT)
    .action((opts: { payer?: string; period?: string; limit?: string; after?: string; output?: string }) =>
      withInvoices(ctx, opts.output, async (client, out) => {
        const limit = opts.limit === undefined ? undefined : whole('--limit', opts.limit, 1, INVOICES_LIMITS.page);
        const res = await client.List({ ...(opts.payer ? { payer: opts.payer } : {}), ...(opts.period ? { period: opts.period } : {}), ...(limit ? { limit } : {}), ...(opts.after ? { after: opts.after } : {}) });
        out.table(['NUMBER', 'PERIOD', 'ISSUED', 'BUYER', 'TOTAL', 'DUE'], res.invoices.map(row), res);
        if (!out.json && !res.invoices.length) out.info('no invoices yet: one is issued for each month with charges, after it ends');
        if (res.next && !out.json) out.warn(`more: micro invoices --after ${res.next}`);
      }),
    );

  invoices
    .command('show <number>')
    .description('an invoice: its lines and totals')
    .option(...OUTPUT)
    .action((number: string, opts: { output?: string }) =>
      withInvoices(ctx, opts.output, async (client, out) => {
        const { invoice } = await client.Read({ number });
        if (out.json) return out.value(invoice);
        show(out, invoice);
      }),
    );

  invoices
    .command('download <number>')
    .description('save an invoice as a printable HTML page (default) or a PDF')
    .option('--pdf', 'a PDF instead of HTML')
    .option('-o, --out <file>', 'where to write it (default ./<number>.html or .pdf; - for stdout)')
    .action((number: string, opts: { pdf?: boolean; out?: string }) =>
      withInvoices(ctx, undefined, async (client, out) => {
        const file = await client.Render({ number, format: opts.pdf ? 'pdf' : 'html' });
        const bytes = Buffer.from(file.content, file.encoding === 'base64' ? 'base64' : 'utf8');
        if (opts.out === '-') {
          process.stdout.write(bytes);
          return;
        }
        const path = opts.out ?? sanitize(file.filename).replace(/[^A-Za-z0-9._-]/g, '_');
        try {
          writeFileSync(path, bytes, { flag: opts.out ? 'w' : 'wx' });
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (code === 'EEXIST') throw new CliError(`${path} exists already: choose another file with -o <file>`);
          throw new CliError(`cannot write ${path}: ${(err as Error).message}`);
        }
        out.info(`saved ${number} to ${path} (${bytes.length} bytes)`);
      }),
    );

  invoices
    .command('issue <period>')
    .description('staff: issue now the invoices of an ended month (YYYY-MM), of one payer or all; nothing is issued twice')
    .option('--payer <payer>', 'only this payer')
    .option(...OUTPUT)
    .action((period: string, opts: { payer?: string; output?: string }) =>
      withInvoices(ctx, opts.output, async (client, out) => {
        const res = await client.Issue({ period, ...(opts.payer ? { payer: opts.payer } : {}) });
        if (out.json) return out.value(res);
        out.table(['NUMBER', 'PERIOD', 'ISSUED', 'BUYER', 'TOTAL', 'DUE'], [...res.issued, ...res.existing].map(row), res);
        out.info(`${res.count} issued${res.existing.length ? `, ${res.existing.length} issued before` : ''}${res.failed ? `, ${res.failed} failed (see the server's log; the job tries again)` : ''}`);
      }),
    );
}

function row(s: Summary): string[] {
  return [s.number, s.period, iso(s.issuedAt), s.buyer, formatDollars(s.total), formatDollars(s.amountDue)];
}

const iso = (ms: number) => new Date(ms).toISOString().slice(0, 10);

function show(out: Printer, i: Invoice): void {
  out.line(`invoice ${i.number}  period ${i.period}  issued ${iso(i.issuedAt)}`);
  out.line(`from    ${sanitize(i.seller.name)}`);
  out.line(`to      ${sanitize(i.buyer.name)} (${sanitize(i.payer)})`);
  out.line();
  const qty = (l: Invoice['lines'][number]) => (l.calls !== undefined ? `${l.calls} calls` : l.seats !== undefined ? `${l.seats} seats` : '');
  out.table(['KIND', 'PERIOD', 'DESCRIPTION', 'QUANTITY', 'AMOUNT'], i.lines.map((l) => [l.kind, l.period, l.description, qty(l), formatDollars(l.amount)]), i);
  out.line();
  const totals: [string, number][] = [
    ['subtotal', i.subtotal],
    [`tax ${i.taxRate / 100} %`, i.tax],
    ['total', i.total],
    ['credits and refunds', i.credits],
    ['payments received', i.payments],
    ['prepaid balance', i.balance],
    ['amount due', i.amountDue],
  ];
  for (const [label, amount] of totals) out.line(`${label.padEnd(20)}${formatDollars(amount).padStart(16)}`);
}

function whole(flag: string, value: string, min: number, max: number): number {
  const n = /^\d+$/.test(value.trim()) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new UsageError(`${flag} must be a whole number from ${min} to ${max}, not "${value.slice(0, 32)}"`);
  return n;
}

async function withInvoices(ctx: CliContext, output: string | undefined, run: (client: Invoices, out: Printer) => Promise<void>): Promise<void> {
  const out = ctx.printer(output);
  const conn = connect(ctx.home);
  try {
    await run(createClient(invoicesService, conn.platform), out);
  } catch (err) {
    throw invoicesError(err, conn);
  }
}

function invoicesError(err: unknown, conn: Connection): CliError {
  if (err instanceof CliError) return err;
  if (err instanceof MicroError && err.id === 'invoices' && [400, 403, 404, 409].includes(err.code)) {
    const prefix = err.code === 403 ? 'forbidden: ' : '';
    return new CliError(`${prefix}${err.detail.replace(/^invalid request: /, '')}`);
  }
  return conn.explain(err, 'invoices');
}
