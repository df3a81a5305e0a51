import type { Command } from 'commander';
import { createClient, MicroError, type TypedClient } from '@micro/sdk';
import { balanceService, BALANCE_LIMITS, formatDollars, parseDollars } from '@micro/platform/client';
import { connect, type Connection } from '../connect.js';
import type { CliContext } from '../context.js';
import { CliError, UsageError, sanitize, truncate, type Printer } from '../output.js';
import { iso, whole } from './platform.js';

/**
 * `micro balance`: the prepaid balance of the namespace's payer and what it owes; its
 * history; a top-up or the payment of what is due through the payment page. The staff's
 * side is under `micro platform`: credit, refund, payment.
 *
 *   micro balance [--namespace ns]                       balance and due, in dollars
 *   micro balance history [--due] [--limit n] [--before id]
 *   micro balance topup <amount>                         prints the Checkout URL ($5 to $10,000)
 *   micro balance pay                                    the Checkout URL for what is due
 *   micro platform credit <customer|namespace> <amount> --reason <why> [--key k]
 *   micro platform refund <customer|namespace> <amount> --reason <why> [--to due] [--key k]
 *   micro platform payment <customer|namespace> <amount> --reason <reference> [--to balance] [--key k]
 *
 * Amounts are dollars (`25`, `$25.50`, `0.000001`: at most 6 decimals); the server takes
 * units (10^-6 USD) and checks everything again.
 */

type Balance = TypedClient<typeof balanceService>;
type Moved = Awaited<ReturnType<Balance['Credit']>>;
type Session = Awaited<ReturnType<Balance['TopUp']>>['session'];

interface Options {
  namespace?: string;
  output?: string;
}

export function registerBalanceCommands(program: Command, ctx: CliContext): void {
  const balance = program
    .command('balance')
    .description("the prepaid balance of the namespace's payer and what is due; history, topup, pay")
    .option('--namespace <namespace>', "another namespace than the login's (its owners and admins; staff: any)")
    .option('-o, --output <format>', 'text or json')
    .action((opts: Options) =>
      run(ctx, opts, async (client, out) => {
        const res = await client.Read({ ...(opts.namespace ? { namespace: opts.namespace } : {}) });
        if (out.json) return out.value(res);
        out.line(`balance  ${formatDollars(res.balance)}`);
        out.line(`due      ${formatDollars(res.due)}${res.due < 0 ? '  (owed: `micro balance pay`)' : ''}`);
        if (res.level !== 'ok') out.warn(`the balance is ${res.level === 'zero' ? 'used up' : `below ${formatDollars(res.lowBalance)}`}: priced calls are refused once it is used up — ${res.provider === 'manual' ? 'ask the platform staff to record a payment' : '`micro balance topup <amount>`'}`);
      }),
    );
  // the parent's --namespace and -o (commander gives them to `balance` wherever they are written)
  const parent = () => balance.opts<Options>();

  balance
    .command('history')
    .description('the entries of the balance (--due: of what is due), newest first, each with the balance after it')
    .option('--due', 'the due account instead of the balance')
    .option('--limit <n>', `entries (1–${BALANCE_LIMITS.maxPage}, default ${BALANCE_LIMITS.page})`)
    .option('--before <id>', 'the page older than this entry (printed under a full page)')
    .action((opts: { due?: boolean; limit?: string; before?: string }) =>
      run(ctx, parent(), async (client, out) => {
        const res = await client.History({
          ...(parent().namespace ? { namespace: parent().namespace } : {}),
          ...(opts.due ? { account: 'due' as const } : {}),
          ...(opts.limit !== undefined ? { limit: whole('--limit', opts.limit, 1, BALANCE_LIMITS.maxPage) } : {}),
          ...(opts.before !== undefined ? { before: whole('--before', opts.before, 1, Number.MAX_SAFE_INTEGER) } : {}),
        });
        out.table(['ID', 'WHEN', 'KIND', 'AMOUNT', 'AFTER', 'REASON'], res.entries.map((e) => [String(e.id), iso(e.at), e.kind || '-', signed(e.amount), formatDollars(e.balanceAfter), truncate(sanitize(e.reason), 60)]), res);
        if (res.next && !out.json) out.warn(`more: micro balance history${opts.due ? ' --due' : ''} --before ${res.next}`);
      }),
    );

  balance
    .command('topup <amount>')
    .description('a top-up of the balance: prints the payment page (Stripe Checkout) to open; the balance rises once it is paid')
    .action((amount: string) =>
      run(ctx, parent(), async (client, out) => {
        const res = await client.TopUp({ ...(parent().namespace ? { namespace: parent().namespace } : {}), amount: dollars(amount) });
        checkout(out, res.session, `a top-up of ${formatDollars(res.session.amount)}`);
      }),
    );

  balance
    .command('pay')
    .description('pay what is due: prints the payment page (rounded up to the cent)')
    .action(() =>
      run(ctx, parent(), async (client, out) => {
        const res = await client.PayDue({ ...(parent().namespace ? { namespace: parent().namespace } : {}) });
        checkout(out, res.session, `${formatDollars(res.session.amount)} of what is due`);
      }),
    );

  registerStaffCommands(program, ctx);
}

/** `micro platform credit | refund | payment`: the staff's postings (admins of micro). */
function registerStaffCommands(program: Command, ctx: CliContext): void {
  const platform = program.commands.find((c) => c.name() === 'platform') ?? program.command('platform').description('manage the platform (M3O) — for admins of namespace micro');
  const staff = (name: string, description: string, done: string, call: (client: Balance, req: StaffRequest) => Promise<Moved>, to?: { flag: string; help: string }) => {
    const cmd = platform
      .command(`${name} <payer> <amount>`)
      .description(`${description}; <payer> is a customer (cus_… or an email) or a namespace; <amount> in dollars`)
      .requiredOption('--reason <text>', 'why, for the history (required)')
      .option('--key <key>', 'the idempotency key: the same key again moves nothing (default: derived from payer, amount and reason)')
      .option('-o, --output <format>', 'text or json');
    if (to) cmd.option(to.flag, to.help);
    cmd.action((payer: string, amount: string, opts: { reason: string; key?: string; to?: string; output?: string }) =>
      run(ctx, { output: opts.output }, async (client, out) => {
        const res = await call(client, { ...payerRef(payer), amount: dollars(amount), reason: opts.reason, ...(opts.key ? { idempotencyKey: opts.key } : {}), ...(opts.to ? { to: opts.to } : {}) });
        if (out.json) return out.value(res);
        if (res.replayed) out.warn(`the key ${res.key} was used on ${iso(res.at)}: nothing moved now; this is that first result`);
        out.info(`${done} ${formatDollars(res.amount)} for ${res.payer} (posting ${res.posting}): balance ${formatDollars(res.balance)}, due ${formatDollars(res.due)}`);
      }),
    );
  };
  staff('credit', 'give a promo credit to the balance of a payer', 'credited', (c, r) => c.Credit(r));
  staff('refund', 'give money back to a payer (at most what it paid the platform, net of refunds)', 'refunded', (c, r) => c.Refund({ ...r, to: toOf(r.to, ['balance', 'due'], '--to') as 'balance' | 'due' | undefined }), { flag: '--to <account>', help: 'balance (default) or due' });
  staff('payment', 'record a payment received outside the platform (bank transfer): on due, or --to balance as a top-up', 'recorded', (c, r) => c.RecordPayment({ ...r, to: toOf(r.to, ['due', 'balance'], '--to') as 'due' | 'balance' | undefined }), { flag: '--to <account>', help: 'due (default) or balance' });
}

interface StaffRequest {
  customer?: string;
  namespace?: string;
  amount: number;
  reason: string;
  idempotencyKey?: string;
  to?: string;
}

function toOf(value: string | undefined, allowed: readonly string[], flag: string): string | undefined {
  if (value === undefined) return undefined;
  if (!allowed.includes(value)) throw new UsageError(`${flag} must be ${allowed.join(' or ')}, not "${truncate(sanitize(value), 20)}"`);
  return value;
}

/** `cus_…` or an email: a customer; anything else: a namespace. */
export function payerRef(ref: string): { customer: string } | { namespace: string } {
  const value = ref.trim();
  if (!value) throw new UsageError('give the payer: a customer id (cus_…), its email, or a namespace');
  return value.startsWith('cus_') || value.includes('@') ? { customer: value } : { namespace: value };
}

/** Dollars as people type them → units; a usage error says what to write. */
export function dollars(text: string): number {
  try {
    return parseDollars(text);
  } catch (err) {
    throw new UsageError(`${(err as Error).message} (the amount in dollars)`);
  }
}

function signed(units: number): string {
  return units > 0 ? `+${formatDollars(units)}` : formatDollars(units);
}

function checkout(out: Printer, session: Session, what: string): void {
  if (out.json) return out.value(session);
  out.info(`Pay ${what} here (until ${iso(session.expiresAt)}):`);
  out.line(session.url);
  out.info('The balance changes once the payment is confirmed: `micro balance`.');
}

async function run(ctx: CliContext, opts: Options, fn: (client: Balance, out: Printer) => Promise<void>): Promise<void> {
  const out = ctx.printer(opts.output);
  const conn = connect(ctx.home);
  try {
    await fn(createClient(balanceService, conn.platform), out);
  } catch (err) {
    throw balanceError(err, conn);
  }
}

/** The balance service's answers, each with what to do next. */
function balanceError(err: unknown, conn: Connection): CliError {
  if (err instanceof CliError) return err;
  if (!(err instanceof MicroError) || err.id !== 'balance') return conn.explain(err, 'balance');
  const detail = err.detail.replace(/^invalid request: /, '');
  const who = conn.env.credentials ? `account ${conn.env.credentials.id} (namespace ${conn.env.namespace})` : 'this account';
  switch (err.code) {
    case 403:
      if (/admin of namespace micro/.test(detail)) return new CliError(`forbidden: ${detail} — ${who} is not staff of the platform; log in as an admin of namespace micro`);
      return new CliError(`forbidden: ${detail} — the balance is for the owners and admins of the namespace`);
    case 501:
      return new CliError(detail);
    default:
      return err.code >= 400 && err.code < 500 ? new CliError(detail) : conn.explain(err, 'balance');
  }
}
