import type { Command } from 'commander';
import { createClient, MicroError, type TypedClient } from '@micro/sdk';
import { signupService } from '@micro/platform/client';
import { connect, type Connection } from '../connect.js';
import type { CliContext } from '../context.js';
import { CliError, UsageError, sanitize, truncate, type Printer } from '../output.js';
import { ask, askSecret, readPassword } from '../prompt.js';
import { iso } from './platform.js';
import { passwordFlagError } from './signup.js';

/**
 * `micro team`: the members of a namespace (M3O teams), through the signup service.
 *
 *   micro team members [--namespace ns]                      members with roles, live invites
 *   micro team invite <email> --role <role> [--namespace ns]  an invite mail goes out
 *   micro team role <email> <role> [--namespace ns]          the member's tokens and keys stop at once
 *   micro team remove <email> [--namespace ns] [--yes]       a member, or a live invite
 *   micro team accept <namespace>                            join by an invite (logged in by email)
 *
 * The namespace defaults to the current login's. The server checks everything (who may,
 * which role, the email); the CLI turns its answers into what to do next.
 */

type Signup = TypedClient<typeof signupService>;
type Member = Awaited<ReturnType<Signup['ListMembers']>>['members'][number];
type TeamInvite = Awaited<ReturnType<Signup['ListMembers']>>['invites'][number];

interface TeamOptions {
  namespace?: string;
  output?: string;
}

const NAMESPACE = ['--namespace <namespace>', "the team's namespace (default: the current login's)"] as const;
const OUTPUT = ['-o, --output <format>', 'text or json'] as const;

export function registerTeamCommands(program: Command, ctx: CliContext): void {
  const team = program.command('team').description('the members of a namespace (M3O teams): members, invite, role, remove, accept');

  team
    .command('members')
    .description('list the members with their roles, and the live invites (owners and admins)')
    .option(...NAMESPACE)
    .option(...OUTPUT)
    .action((opts: TeamOptions) =>
      inTeam(ctx, opts, async (signup, namespace, out) => {
        const res = await signup.ListMembers({ namespace });
        out.table(['EMAIL', 'ROLE', 'STATUS', 'SINCE'], [...res.members.map(memberRow), ...res.invites.map(inviteRow)], { namespace, ...res });
      }),
    );

  team
    .command('invite <email>')
    .description('invite an email into the namespace with a role (an invite mail is sent; they accept with `micro team accept`)')
    .requiredOption('--role <role>', 'admin, developer or viewer (owners: invite as admin, then `micro team role <email> owner`)')
    .option(...NAMESPACE)
    .option(...OUTPUT)
    .action((email: string, opts: TeamOptions & { role: string }) =>
      inTeam(ctx, opts, async (signup, namespace, out) => {
        const { invite } = await signup.InviteMember({ namespace, email, role: opts.role });
        if (out.json) return out.value({ namespace, ...invite });
        out.info(`invited ${invite.email} into ${namespace} as ${invite.role}, valid until ${iso(invite.expiresAt)}; they accept with \`micro team accept ${namespace}\``);
      }),
    );

  team
    .command('role <email> <role>')
    .description("change a member's role (owner, admin, developer, viewer); its tokens and keys in the namespace stop at once")
    .option(...NAMESPACE)
    .option(...OUTPUT)
    .action((email: string, role: string, opts: TeamOptions) =>
      inTeam(ctx, opts, async (signup, namespace, out) => {
        const { member } = await signup.SetRole({ namespace, email, role });
        if (out.json) return out.value({ namespace, ...member });
        out.info(`${member.email ?? member.account} is ${member.role} of ${namespace}; their sessions there end now`);
      }),
    );

  team
    .command('remove <email>')
    .description('remove a member (its account in the namespace, tokens and keys stop at once), or revoke the live invite of an email')
    .option(...NAMESPACE)
    .option('--yes', 'do not ask for confirmation (needed when stdin is not a terminal)')
    .action((email: string, opts: TeamOptions & { yes?: boolean }) =>
      inTeam(ctx, opts, async (signup, namespace, out) => {
        if (!opts.yes) await confirmRemove(ctx, email, namespace);
        await signup.RemoveMember({ namespace, email });
        out.info(`removed ${shown(email)} from ${namespace}`);
      }),
    );

  team
    .command('accept <namespace>')
    .description('join a namespace you are invited into (logged in by email; your password is the new account\'s too)')
    .option('--password <->', '"-" reads your password from stdin (default: the one of the current login)')
    .option(...OUTPUT)
    .action((namespace: string, opts: { password?: string; output?: string }) => accept(ctx, namespace, opts));
}

/** Runs a team command with the signup client and the namespace it is about; errors say what to do. */
async function inTeam(ctx: CliContext, opts: TeamOptions, run: (signup: Signup, namespace: string, out: Printer) => Promise<void>): Promise<void> {
  const out = ctx.printer(opts.output);
  const conn = connect(ctx.home);
  const namespace = opts.namespace ?? conn.env.namespace;
  try {
    await run(createClient(signupService, conn.platform), namespace, out);
  } catch (err) {
    throw teamError(err, conn, namespace);
  }
}

async function accept(ctx: CliContext, namespace: string, opts: { password?: string; output?: string }): Promise<void> {
  const out = ctx.printer(opts.output);
  const conn = connect(ctx.home);
  const creds = conn.env.credentials;
  if (!creds?.id.includes('@')) {
    throw new CliError(`invites are accepted by a customer logged in by email — \`micro login --email <email>\` (or \`micro signup\` with the invite), then \`micro team accept ${shown(namespace)}\``);
  }
  if (opts.password !== undefined && opts.password !== '-') throw passwordFlagError();
  const signup = createClient(signupService, conn.platform);
  let password = opts.password === '-' ? await readPassword(ctx.io) : creds.secret;
  for (let asked = false; ; asked = true) {
    try {
      const res = await signup.AcceptInvite({ namespace, password });
      if (out.json) return out.value(res);
      out.info(`joined ${res.namespace} as ${res.role} (account ${res.account}) — switch to it with \`micro user namespace set ${res.namespace}\``);
      return;
    } catch (err) {
      // the stored password may be another namespace's (each account keeps its own): ask once on a terminal
      const wrong = err instanceof MicroError && err.code === 401 && err.id === 'signup';
      if (!wrong || asked || !ctx.io.stdin.isTTY || opts.password === '-') throw teamError(err, conn, namespace);
      password = await askSecret(ctx.io, `Password of ${creds.id}: `);
    }
  }
}

/** signup's answers to team commands, each with what to do next. */
function teamError(err: unknown, conn: Connection, namespace: string): CliError {
  if (!(err instanceof MicroError) || err.id !== 'signup') return conn.explain(err, 'signup');
  const detail = err.detail.replace(/^invalid request: /, '');
  const who = conn.env.credentials ? `account ${conn.env.credentials.id} (namespace ${conn.env.namespace})` : 'this account';
  switch (err.code) {
    case 400:
      if (/^role: "owner"/.test(detail)) return new CliError(`${detail} — owners are made from members: invite as admin, then \`micro team role <email> owner\` once they joined`);
      if (/^role: /.test(detail)) return new CliError(`${detail} — e.g. \`--role developer\` (developer: everything but members, accounts and keys; viewer: read only)`);
      return new CliError(detail);
    case 401:
      return new CliError(`${detail} — check your password (\`micro login --email ${conn.env.credentials?.id ?? '<email>'}\`)`);
    case 403:
      if (/for customers/.test(detail)) return new CliError(`${detail} — \`micro login --email <email>\``);
      return new CliError(`forbidden: ${detail} — ${who} may not manage the members of ${shown(namespace)}; ask one of its owners or admins`);
    case 404:
      if (/no live invite/.test(detail)) return new CliError(`${detail} — ask an owner or admin of it to invite you (\`micro team invite <your email> --role developer --namespace ${shown(namespace)}\`)`);
      return new CliError(`${detail} — \`micro team members${namespace === conn.env.namespace ? '' : ` --namespace ${shown(namespace)}`}\` lists members and invites`);
    case 409:
      return conflict(detail.replace(/^email: /, '').replace(/ \((SetRole|RemoveMember) [^)]*\)$/, ''));
    case 429:
      return new CliError(detail);
    default:
      return conn.explain(err, 'signup');
  }
}

/** A 409, with the command to use (the server's hints name endpoints). */
function conflict(detail: string): CliError {
  if (/last owner/.test(detail)) return new CliError(`${detail.replace(/ \(or ask M3O[^)]*\)$/, '')}: \`micro team role <email> owner\`, then remove (or ask M3O to delete the namespace)`);
  if (/member of .* already/.test(detail)) return new CliError(`${detail} — change the role with \`micro team role <email> <role>\``);
  if (/invited into .* already/.test(detail)) return new CliError(`${detail} — \`micro team remove <email>\` revokes the invite`);
  return new CliError(detail);
}

async function confirmRemove(ctx: CliContext, email: string, namespace: string): Promise<void> {
  if (!ctx.io.stdin.isTTY) throw new UsageError(`removing ${shown(email)} from ${namespace} ends their access at once: confirm with --yes (stdin is not a terminal to ask)`);
  const answer = await ask(ctx.io, `Remove ${shown(email)} from ${namespace}? Their account there, tokens and keys stop at once. Type the email to confirm: `);
  if (answer.trim().toLowerCase() !== email.trim().toLowerCase()) throw new CliError('not confirmed: nobody was removed');
}

/** An argument echoed back: one printable line of bounded length. */
function shown(text: string): string {
  return truncate(sanitize(text), 80);
}

function memberRow(m: Member): string[] {
  return [m.email ?? m.account, m.role, 'member', iso(m.createdAt)];
}

function inviteRow(i: TeamInvite): string[] {
  return [i.email, i.role, `invited until ${iso(i.expiresAt)}`, iso(i.createdAt)];
}
