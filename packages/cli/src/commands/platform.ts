import type { Command } from 'commander';
import { createClient, MicroError, type TypedClient } from '@micro/sdk';
import { signupService, SIGNUP_LIMITS } from '@micro/platform/client';
import { connect, type Connection } from '../connect.js';
import type { CliContext } from '../context.js';
import { CliError, UsageError } from '../output.js';
import { ask } from '../prompt.js';
import { registerPricingCommands } from './pricing.js';

/**
 * `micro platform`: the staff's side of the platform (admins of namespace micro): invites,
 * the waiting list and customers, through the signup service.
 *
 *   micro platform invite <email> [--namespace ns] [--days n]
 *   micro platform invites | revoke <invite id> | waitlist | invite-next <n>
 *   micro platform customers [--status s] | customer <id|email>
 *   micro platform suspend | reactivate | delete <id|email>
 *   micro platform pricing [set | clear]   (pricing.ts)
 */

type Signup = TypedClient<typeof signupService>;
type Invite = Awaited<ReturnType<Signup['Invite']>>['invite'];
type Customer = Awaited<ReturnType<Signup['ReadCustomer']>>['customer'];

const STATUSES = ['unverified', 'verified', 'active', 'suspended', 'deleted'] as const;

export function registerPlatformCommands(program: Command, ctx: CliContext): void {
  const platform = program.command('platform').description('manage the platform (M3O): invites, the waiting list, customers — for admins of namespace micro');
  const output = ['-o, --output <format>', 'text or json'] as const;
  const page = (c: Command) =>
    c
      .option('--limit <n>', `at most this many (1–${SIGNUP_LIMITS.page}, default ${SIGNUP_LIMITS.page})`)
      .option('--after <cursor>', 'the page after this cursor (printed under a full page)')
      .option(...output);

  platform
    .command('invite <email>')
    .description('invite an email to sign up (an invite mail is sent)')
    .option('--namespace <namespace>', 'invite as a member of this namespace instead of into a namespace of its own')
    .option('--days <n>', `days the invite lives (1–${SIGNUP_LIMITS.inviteDays}, default 7)`)
    .option(...output)
    .action((email: string, opts: { namespace?: string; days?: string; output?: string }) =>
      staff(ctx, opts.output, async (signup, out) => {
        const days = opts.days === undefined ? undefined : whole('--days', opts.days, 1, SIGNUP_LIMITS.inviteDays);
        const { invite } = await signup.Invite({ email, ...(opts.namespace ? { namespace: opts.namespace } : {}), ...(days ? { expiresInDays: days } : {}) });
        if (out.json) return out.value(invite);
        out.info(`invited ${invite.email}${invite.namespace ? ` into ${invite.namespace}` : ''}: ${invite.id}, valid until ${iso(invite.expiresAt)}`);
      }),
    );

  page(platform.command('invites').description('list the invites, oldest first')).action((opts: PageOptions) =>
    staff(ctx, opts.output, async (signup, out) => {
      const res = await signup.ListInvites(pageOf(opts));
      out.table(['ID', 'EMAIL', 'NAMESPACE', 'STATUS', 'EXPIRES'], res.invites.map(inviteRow), res);
      more(out, res.next, 'invites');
    }),
  );

  platform
    .command('revoke <id>')
    .description('revoke an invite not yet used')
    .action((id: string) =>
      staff(ctx, undefined, async (signup, out) => {
        await signup.RevokeInvite({ id });
        out.info(`revoked invite ${id}`);
      }),
    );

  page(platform.command('waitlist').description('list the waiting list, oldest first')).action((opts: PageOptions) =>
    staff(ctx, opts.output, async (signup, out) => {
      const res = await signup.ListWaitlist(pageOf(opts));
      out.table(['EMAIL', 'JOINED', 'INVITED'], res.entries.map((e) => [e.email, iso(e.createdAt), e.invitedAt ? iso(e.invitedAt) : '-']), res);
      more(out, res.next, 'waitlist');
    }),
  );

  platform
    .command('invite-next <n>')
    .description('invite the next n of the waiting list, oldest first')
    .option(...output)
    .action((n: string, opts: { output?: string }) =>
      staff(ctx, opts.output, async (signup, out) => {
        const res = await signup.InviteWaitlist({ count: whole('<n>', n, 1, SIGNUP_LIMITS.inviteWaitlist) });
        if (out.json) return out.value(res);
        if (res.invites.length === 0) return out.info('nobody on the waiting list is left to invite');
        out.table(['ID', 'EMAIL', 'NAMESPACE', 'STATUS', 'EXPIRES'], res.invites.map(inviteRow), res);
      }),
    );

  registerCustomerCommands(platform, ctx, page, output);
  registerPricingCommands(platform, ctx);
}

function registerCustomerCommands(platform: Command, ctx: CliContext, page: (c: Command) => Command, output: readonly [string, string]): void {
  page(platform.command('customers').description('list the customers'))
    .option('--status <status>', STATUSES.join(', '))
    .action((opts: PageOptions & { status?: string }) =>
      staff(ctx, opts.output, async (signup, out) => {
        const status = opts.status === undefined ? undefined : statusOf(opts.status);
        const res = await signup.ListCustomers({ ...pageOf(opts), ...(status ? { status } : {}) });
        out.table(['ID', 'EMAIL', 'STATUS', 'NAMESPACES', 'CREATED'], res.customers.map(customerRow), res);
        more(out, res.next, 'customers');
      }),
    );

  const one = (name: string, description: string, call: (s: Signup, ref: CustomerRef) => Promise<{ customer: Customer }>, done?: string) =>
    platform
      .command(`${name} <customer>`)
      .description(`${description} (by id or email)`)
      .option(...output)
      .action((ref: string, opts: { output?: string }) =>
        staff(ctx, opts.output, async (signup, out) => {
          const { customer } = await call(signup, customerRef(ref));
          if (out.json) return out.value(customer);
          if (done) return out.info(`${done} ${customer.id} (${customer.email ?? '-'}): ${customer.status}`);
          out.table(['ID', 'EMAIL', 'STATUS', 'NAMESPACES', 'CREATED'], [customerRow(customer)], customer);
        }),
      );
  one('customer', 'show a customer', (s, r) => s.ReadCustomer(r));
  one('suspend', 'suspend a customer: its accounts stop at once', (s, r) => s.SuspendCustomer(r), 'suspended');
  one('reactivate', 'end the suspension of a customer', (s, r) => s.ReactivateCustomer(r), 'reactivated');

  platform
    .command('delete <customer>')
    .description('delete a customer (by id or email): its accounts go, the namespaces it alone owns are marked deleted')
    .option('--yes', 'do not ask for confirmation (needed when stdin is not a terminal)')
    .option(...output)
    .action((ref: string, opts: { yes?: boolean; output?: string }) =>
      staff(ctx, opts.output, async (signup, out) => {
        if (!opts.yes) await confirmDelete(ctx, ref);
        const res = await signup.DeleteCustomer(customerRef(ref));
        if (out.json) return out.value(res);
        out.info(`deleted customer ${ref}${res.deletedNamespaces.length ? `; namespaces marked deleted: ${res.deletedNamespaces.join(', ')}` : ''}`);
      }),
    );
}

interface PageOptions {
  limit?: string;
  after?: string;
  output?: string;
}

type CustomerRef = { id: string } | { email: string };

/** Runs a staff command with the signup client of the current environment; errors say what to do. */
async function staff(ctx: CliContext, output: string | undefined, run: (signup: Signup, out: ReturnType<CliContext['printer']>) => Promise<void>): Promise<void> {
  const out = ctx.printer(output);
  const conn = connect(ctx.home);
  try {
    await run(createClient(signupService, conn.platform), out);
  } catch (err) {
    throw staffError(err, conn);
  }
}

function staffError(err: unknown, conn: Connection): CliError {
  if (err instanceof MicroError && err.code === 403 && err.id === 'signup') {
    const who = conn.env.credentials ? `account ${conn.env.credentials.id} (namespace ${conn.env.namespace})` : 'this account';
    return new CliError(
      `forbidden: ${err.detail} — ${who} is not staff of the platform; log in as an admin of namespace micro (\`micro login --id <admin> --namespace micro\`, or on the server's own machine \`micro logout\` to act as the local admin)`,
    );
  }
  if (err instanceof MicroError && err.id === 'signup' && (err.code === 400 || err.code === 404 || err.code === 409 || err.code === 429)) {
    return new CliError(err.detail.replace(/^invalid request: /, ''));
  }
  return conn.explain(err, 'signup');
}

async function confirmDelete(ctx: CliContext, ref: string): Promise<void> {
  if (!ctx.io.stdin.isTTY) throw new UsageError(`deleting customer ${ref} cannot be undone: confirm with --yes (stdin is not a terminal to ask)`);
  const answer = await ask(ctx.io, `Delete customer ${ref}, its accounts and the namespaces it alone owns? Type ${ref} to confirm: `);
  if (answer !== ref) throw new CliError('not confirmed: nothing was deleted');
}

function customerRef(ref: string): CustomerRef {
  const value = ref.trim();
  if (!value) throw new UsageError('give a customer id (cus_…) or email');
  return value.includes('@') ? { email: value } : { id: value };
}

function statusOf(value: string): (typeof STATUSES)[number] {
  const status = STATUSES.find((s) => s === value);
  if (!status) throw new UsageError(`--status must be one of ${STATUSES.join(', ')}, not "${value}"`);
  return status;
}

function pageOf(opts: PageOptions): { limit?: number; after?: string } {
  return { ...(opts.limit !== undefined ? { limit: whole('--limit', opts.limit, 1, SIGNUP_LIMITS.page) } : {}), ...(opts.after ? { after: opts.after } : {}) };
}

export function whole(flag: string, value: string, min: number, max: number): number {
  const n = /^\d+$/.test(value.trim()) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new UsageError(`${flag} must be a whole number from ${min} to ${max}, not "${value}"`);
  return n;
}

function more(out: ReturnType<CliContext['printer']>, next: string | undefined, command: string): void {
  if (next && !out.json) out.warn(`more: micro platform ${command} --after ${next}`);
}

function inviteRow(i: Invite): string[] {
  return [i.id, i.email, i.namespace ?? '-', i.status, iso(i.expiresAt)];
}

function customerRow(c: Customer): string[] {
  return [c.id, c.email ?? '-', c.status, c.namespaces.map((n) => `${n.namespace} (${n.role})`).join(', ') || '-', iso(c.createdAt)];
}

/** A time for people: ISO 8601 to the second. */
export function iso(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}
