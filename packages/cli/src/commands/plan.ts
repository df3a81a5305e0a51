import type { Command } from 'commander';
import { createClient, MicroError, type TypedClient } from '@micro/sdk';
import { billingService, formatDollars, parseDollars } from '@micro/platform/client';
import { connect, type Connection } from '../connect.js';
import type { CliContext } from '../context.js';
import { CliError, sanitize, UsageError, type Printer } from '../output.js';
import { iso } from './platform.js';
import { parsePairs } from './quota.js';

/**
 * `micro plan`: the plan of the current namespace's payer, through the billing service.
 *
 *   micro plan [--customer c] [-o json]          plan, seats, period, charges, next fee
 *   micro plan list [-o json]                    the plans with their prices
 *   micro plan change <plan> [--customer c]      subscribe or change now, pro-rated to the second
 *   micro plan cancel | resume [--customer c]    back to Community when the period ends, or not
 *
 * `micro platform plans …` (staff): every plan, and create, set (from the next period),
 * retire. Members read; the owner who pays changes; staff name any customer with --customer.
 */

type Billing = TypedClient<typeof billingService>;
type Subscription = Awaited<ReturnType<Billing['Subscription']>>['subscription'];
type PlanView = Awaited<ReturnType<Billing['Plans']>>['plans'][number];

const OUTPUT = ['-o, --output <format>', 'text or json'] as const;
const CUSTOMER = ['--customer <customer>', "staff: the customer (cus_… or its email); default the current namespace's payer"] as const;

/** `micro plan …`, and `micro platform plans …` under `micro platform` (registered before this). */
export function registerPlanCommands(program: Command, ctx: CliContext): void {
  const platform = program.commands.find((c) => c.name() === 'platform');
  if (!platform) throw new Error('register the platform commands before the plan commands');
  registerPlatformPlanCommands(platform, ctx);
  const plan = program
    .command('plan')
    .description("the plan of your namespace's payer: plan, seats, period, next fee; `change`, `cancel`, `resume`, `list`")
    .option(...CUSTOMER)
    .option(...OUTPUT)
    .action((opts: { customer?: string; output?: string }) =>
      withBilling(ctx, opts.output, async (billing, out) => {
        showSubscription(out, (await billing.Subscription(who(opts))).subscription);
      }),
    );

  plan
    .command('list')
    .description('the plans with their prices and what they include')
    .option(...OUTPUT)
    .action((_o: unknown, cmd: Command) =>
      withBilling(ctx, globals(cmd).output, async (billing, out) => {
        const res = await billing.Plans({});
        out.table(['ID', 'NAME', 'PER SEAT A MONTH', 'STATUS', 'SERVICES', 'REQUESTS/S', 'MEMBERS', 'SUPPORT'], res.plans.map(planRow), res);
      }),
    );

  plan
    .command('change <plan>')
    .description('subscribe or change plan now: the rest of this period is charged at the new price less the old, to the second')
    .option(...CUSTOMER)
    .option(...OUTPUT)
    .action((id: string, _o: unknown, cmd: Command) =>
      withBilling(ctx, globals(cmd).output, async (billing, out) => {
        const res = await billing.ChangePlan({ plan: id, ...who(globals(cmd)) });
        if (out.json) return out.value(res);
        const money = res.charged === 0 ? 'nothing charged' : res.charged > 0 ? `${formatDollars(res.charged)} charged for the rest of ${res.subscription.period.id}` : `${formatDollars(-res.charged)} credited for the rest of ${res.subscription.period.id}`;
        out.info(`now on ${res.subscription.plan.name}: ${money}`);
        showSubscription(out, res.subscription);
      }),
    );

  for (const [name, cancel] of [
    ['cancel', true],
    ['resume', false],
  ] as const) {
    plan
      .command(name)
      .description(cancel ? 'back to Community when this period ends (nothing is credited)' : 'keep the plan past this period after all')
      .option(...CUSTOMER)
      .option(...OUTPUT)
      .action((_o: unknown, cmd: Command) =>
        withBilling(ctx, globals(cmd).output, async (billing, out) => {
          const opts = globals(cmd);
          const { subscription: s } = cancel ? await billing.Cancel(who(opts)) : await billing.Resume(who(opts));
          if (out.json) return out.value(s);
          out.info(s.cancelAtPeriodEnd ? `${s.plan.name} ends with ${s.period.id}: from ${iso(s.period.end)} on Community` : `${s.plan.name} goes on: next fee ${formatDollars(s.next.amount)} on ${iso(s.period.end)}`);
        }),
      );
  }
}

/** `micro platform plans …`, for staff (admins of micro). */
export function registerPlatformPlanCommands(platform: Command, ctx: CliContext): void {
  const plans = platform
    .command('plans')
    .description('the plans: every one with the version in force and the next; `show`, `create`, `set`, `retire`')
    .option(...OUTPUT)
    .action((opts: { output?: string }) =>
      withBilling(ctx, opts.output, async (billing, out) => {
        const res = await billing.ListPlans({});
        const rows = res.plans.map((p) => [...planRow(p.current), p.next ? `${formatDollars(p.next.price)}, ${p.next.status} from ${p.next.from}` : '-']);
        out.table(['ID', 'NAME', 'PER SEAT A MONTH', 'STATUS', 'SERVICES', 'REQUESTS/S', 'MEMBERS', 'SUPPORT', 'NEXT'], rows, res);
      }),
    );

  plans
    .command('show <plan>')
    .description('one plan: the version in force and the next')
    .option(...OUTPUT)
    .action((id: string, _o: unknown, cmd: Command) =>
      withBilling(ctx, globals(cmd).output, async (billing, out) => {
        const found = (await billing.ListPlans({})).plans.find((p) => p.current.id === id);
        if (!found) throw new CliError(`no plan ${id} — \`micro platform plans\` lists them`);
        if (out.json) return out.value(found);
        showPlan(out, found.current, 'in force');
        if (found.next) showPlan(out, found.next, 'next');
      }),
    );

  const fields = (c: Command) =>
    c
      .option('--name <name>', 'what people see')
      .option('--description <text>', 'one line')
      .option('--price <dollars>', 'per seat a month, e.g. 35 or $35.50')
      .option('--limit <key=value...>', 'quota limits of each namespace, e.g. services=20 requestsPerSecond=50')
      .option('--support <level>', 'community, email or priority')
      .option('--uptime <percent>', 'the SLA uptime, e.g. 99.95, or none')
      .option('--response-hours <hours>', 'the SLA response time, or none')
      .option('--invite-only <bool>', 'true or false')
      .option('--shared-namespaces <bool>', 'namespaces with members besides their owner: true or false')
      .option('--per-namespace-quotas <bool>', 'owners set their namespaces quotas within the plan: true or false')
      .option('--status <status>', 'available, reserved or retired')
      .option(...OUTPUT);

  fields(plans.command('create <plan>').description('a new plan, in force now (--name and --price needed)')).action((id: string, _o: unknown, cmd: Command) =>
    withBilling(ctx, globals(cmd).output, async (billing, out) => {
      const { plan } = await billing.CreatePlan({ id, ...planFields(globals(cmd)) });
      if (out.json) return out.value(plan);
      out.info(`made plan ${plan.id} (${plan.name}), ${formatDollars(plan.price)} a seat a month, in force from ${plan.from}`);
    }),
  );

  fields(plans.command('set <plan>').description('change a plan: in force from the next period, never retroactively')).action((id: string, _o: unknown, cmd: Command) =>
    withBilling(ctx, globals(cmd).output, async (billing, out) => {
      const { plan } = await billing.UpdatePlan({ id, ...planFields(globals(cmd)) });
      if (out.json) return out.value(plan);
      out.info(`plan ${plan.id} changed from ${plan.from}: ${formatDollars(plan.price)} a seat a month, ${plan.status}; this period keeps the version in force`);
    }),
  );

  plans
    .command('retire <plan>')
    .description('no new subscriptions from the next period; those on it keep it')
    .option(...OUTPUT)
    .action((id: string, _o: unknown, cmd: Command) =>
      withBilling(ctx, globals(cmd).output, async (billing, out) => {
        const { plan } = await billing.RetirePlan({ id });
        if (out.json) return out.value(plan);
        out.info(`plan ${plan.id} is retired from ${plan.from}: no new subscriptions; those on it keep it`);
      }),
    );
}

interface FieldOptions {
  name?: string;
  description?: string;
  price?: string;
  limit?: string[];
  support?: string;
  uptime?: string;
  responseHours?: string;
  inviteOnly?: string;
  sharedNamespaces?: string;
  perNamespaceQuotas?: string;
  status?: string;
  output?: string;
}

/** The flags as UpdatePlan's fields: only those given; each checked here for its form, by the server for the rest. */
export function planFields(o: FieldOptions) {
  const sla = { ...(o.uptime !== undefined ? { uptimeBasisPoints: uptime(o.uptime) } : {}), ...(o.responseHours !== undefined ? { responseHours: hours(o.responseHours) } : {}) };
  return {
    ...(o.name !== undefined ? { name: o.name } : {}),
    ...(o.description !== undefined ? { description: o.description } : {}),
    ...(o.price !== undefined ? { price: dollars(o.price) } : {}),
    ...(o.limit !== undefined ? { limits: limits(o.limit) } : {}),
    ...(o.support !== undefined ? { support: o.support } : {}),
    ...(Object.keys(sla).length ? { sla } : {}),
    ...(o.inviteOnly !== undefined ? { inviteOnly: bool('--invite-only', o.inviteOnly) } : {}),
    ...(o.sharedNamespaces !== undefined ? { sharedNamespaces: bool('--shared-namespaces', o.sharedNamespaces) } : {}),
    ...(o.perNamespaceQuotas !== undefined ? { perNamespaceQuotas: bool('--per-namespace-quotas', o.perNamespaceQuotas) } : {}),
    ...(o.status !== undefined ? { status: o.status } : {}),
  };
}

function dollars(text: string): number {
  try {
    return parseDollars(text);
  } catch (err) {
    throw new UsageError(`--price: ${(err as Error).message}`);
  }
}

function limits(pairs: string[]): Record<string, number> {
  try {
    return parsePairs(pairs);
  } catch (err) {
    throw new UsageError(`--limit: ${err instanceof MicroError ? err.detail : String(err)}`);
  }
}

/** `99.95` → 9995 basis points; `none` → null */
function uptime(text: string): number | null {
  if (text === 'none') return null;
  const m = /^(\d{1,3})(?:\.(\d{1,2}))?%?$/.exec(text.trim());
  const bp = m ? Number(m[1]) * 100 + Number((m[2] ?? '').padEnd(2, '0')) : NaN;
  if (!(bp >= 0 && bp <= 10_000)) throw new UsageError(`--uptime must be a percentage from 0 to 100 with at most 2 decimals (99.95), or none, not "${text.slice(0, 20)}"`);
  return bp;
}

function hours(text: string): number | null {
  if (text === 'none') return null;
  if (!/^\d{1,4}$/.test(text.trim())) throw new UsageError(`--response-hours must be whole hours (1 to 8760), or none, not "${text.slice(0, 20)}"`);
  return Number(text);
}

function bool(flag: string, text: string): boolean {
  if (text === 'true' || text === 'false') return text === 'true';
  throw new UsageError(`${flag} must be true or false, not "${text.slice(0, 20)}"`);
}

/**
 * A subcommand's options with its parents': commander gives `-o` and `--customer`, which
 * `micro plan` and `micro platform plans` take too, to the parent wherever they are written.
 */
function globals(cmd: Command): FieldOptions & { customer?: string } {
  return cmd.optsWithGlobals();
}

function who(opts: { customer?: string }) {
  return opts.customer !== undefined ? { customer: opts.customer } : {};
}

function planRow(p: PlanView): string[] {
  const n = (key: string) => (p.limits[key] === undefined ? '-' : String(p.limits[key]));
  return [p.id, p.name, p.status === 'reserved' ? 'later' : formatDollars(p.price), p.status, n('services'), n('requestsPerSecond'), n('members'), p.support];
}

function showPlan(out: Printer, p: PlanView, what: string): void {
  // the built-in plans' first version is in force from before any period
  const from = p.from === '1970-01' ? 'from the start' : `from ${p.from}`;
  out.line(`${p.name} (${p.id}), ${what} ${from}: ${formatDollars(p.price)} a seat a month, ${p.status}`);
  out.line(`  support ${p.support}; SLA ${p.sla.uptimeBasisPoints === null ? 'none' : `${p.sla.uptimeBasisPoints / 100} % uptime`}${p.sla.responseHours === null ? '' : `, answers within ${p.sla.responseHours} h`}`);
  out.line(`  invite only ${p.inviteOnly}, shared namespaces ${p.sharedNamespaces}, per-namespace quotas ${p.perNamespaceQuotas}`);
  out.line(`  limits ${Object.entries(p.limits).map(([k, v]) => `${k}=${v}`).join(' ')}`);
}

function showSubscription(out: Printer, s: Subscription): void {
  if (out.json) return out.value(s);
  const next = s.next.amount === 0 ? `${s.next.name}: nothing to pay` : `${s.next.name}, ${s.next.seats} × ${formatDollars(s.next.price)} = ${formatDollars(s.next.amount)}`;
  const rows: [string, string][] = [
    ['customer', `${s.customer}${s.email ? ` (${s.email})` : ''}`],
    ['plan', `${s.plan.name}, ${formatDollars(s.plan.price)} a seat a month${s.subscribed ? `, since ${iso(s.since)}` : ' (never subscribed)'}`],
    ['period', `${s.period.id} until ${iso(s.period.end)}${s.cancelAtPeriodEnd ? ', cancelled: then Community' : ''}`],
    ['seats', `${s.seats} charged this period; ${s.members} member${s.members === 1 ? '' : 's'} now`],
    ['charged', `${formatDollars(s.charged)} this period`],
    ['next', `${s.next.period}: ${next}`],
    ['namespaces', s.namespaces.join(', ') || '-'],
  ];
  for (const [key, value] of rows) out.line(`${key.padEnd(11)} ${sanitize(value)}`);
}

/** Runs a command with the billing client of the current environment; errors say what to do. */
async function withBilling(ctx: CliContext, output: string | undefined, run: (billing: Billing, out: Printer) => Promise<void>): Promise<void> {
  const out = ctx.printer(output);
  const conn = connect(ctx.home);
  try {
    await run(createClient(billingService, conn.platform), out);
  } catch (err) {
    throw billingError(err, conn);
  }
}

function billingError(err: unknown, conn: Connection): CliError {
  if (!(err instanceof MicroError) || err.id !== 'billing') return conn.explain(err, 'billing');
  const detail = err.detail.replace(/^invalid request: /, '');
  switch (err.code) {
    case 400:
    case 404:
      if (/^plan: no plan/.test(detail)) return new CliError(`${detail.replace(/ \(see Plans\)$/, '')} — \`micro plan list\` shows the plans`);
      if (/^customer: staff name/.test(detail)) return new CliError(`${detail} — e.g. \`micro plan --customer ada@example.com\``);
      return new CliError(detail);
    case 409:
      return new CliError(detail);
    case 403: {
      const who = conn.env.credentials ? `account ${conn.env.credentials.id} (namespace ${conn.env.namespace})` : 'this account';
      return new CliError(`forbidden: ${detail} — ${who}; ask the owner who pays, or the platform's staff`);
    }
    default:
      return conn.explain(err, 'billing');
  }
}
