import type { Command } from 'commander';
import { authApi, Client, createClient, MicroError } from '@micro/sdk';
import { connect, explainError, noLocalServer } from '../connect.js';
import type { CliContext } from '../context.js';
import { CliError, UsageError } from '../output.js';
import { askNewPassword, checkPassword, readPassword } from '../prompt.js';
import type { ResolvedEnv } from '../config.js';
import { loginByEmail, namespacesByEmail } from './signup.js';

export { checkPassword };

/**
 * `micro user`: the account the CLI acts as in the current environment.
 *
 *   micro user token                    a fresh access token (for curl, other tools)
 *   micro user namespace                the account's namespace
 *   micro user namespaces               the namespaces of the logged-in email (customers)
 *   micro user namespace set <ns>       log in to another of them
 *   micro user set password             asked twice without echo, or --password-stdin
 */
export function registerUserCommands(program: Command, ctx: CliContext): void {
  const user = program.command('user').description('the account of the current environment: its token, namespace and password');

  user
    .command('token')
    .description('print a fresh access token of the current account')
    .option('-o, --output <format>', 'text or json ({token, expiresAt, account})')
    .action(async (opts: { output?: string }) => {
      const out = ctx.printer(opts.output);
      const env = loggedIn(ctx);
      const res = await tokenClient(env)
        .Token(env.credentials)
        .catch((err: unknown) => {
          throw refused(err, env);
        });
      if (out.json) return out.value({ token: res.token, expiresAt: res.expiresAt, account: res.account });
      out.line(res.token);
    });

  const namespace = user
    .command('namespace')
    .description("print the current account's namespace")
    .action(() => {
      const env = ctx.home.resolve();
      if (!env.credentials) throw new CliError(`not logged in to ${env.name} — run \`micro login\``);
      ctx.printer().line(env.namespace);
    });

  namespace
    .command('set <namespace>')
    .description('log in to another of your namespaces (same email and password)')
    .action(async (name: string) => {
      const env = customerLogin(ctx);
      const res = await loginByEmail(env, { email: env.credentials.id, password: env.credentials.secret, namespace: name });
      ctx.home.writeCredentials(env.name, { ...env.credentials, namespace: res.namespace });
      ctx.printer().info(`logged in to ${env.name} as ${res.account} in namespace ${res.namespace}`);
    });

  user
    .command('namespaces')
    .description('list the namespaces of the logged-in email with your role in each (* marks the current one)')
    .option('-o, --output <format>', 'text or json ({current, namespaces, roles})')
    .action(async (opts: { output?: string }) => {
      const out = ctx.printer(opts.output);
      const env = customerLogin(ctx);
      const res = await namespacesByEmail(env, { email: env.credentials.id, password: env.credentials.secret, namespace: env.namespace });
      out.table(
        ['', 'NAMESPACE', 'ROLE'],
        res.namespaces.map((n) => [n.namespace === env.namespace ? '*' : '', n.namespace, n.role]),
        { current: env.namespace, namespaces: res.namespaces.map((n) => n.namespace), roles: Object.fromEntries(res.namespaces.map((n) => [n.namespace, n.role])) },
      );
    });

  const set = user.command('set').description('change a setting of the current account');
  set
    .command('password')
    .description('change the password of the current account (asked twice, without echo)')
    .option('--password-stdin', 'read the new password from stdin (one line)')
    .action(async (opts: { passwordStdin?: boolean }) => {
      const env = loggedIn(ctx);
      const password = await newPassword(ctx, Boolean(opts.passwordStdin));
      try {
        await createClient(authApi, connect(ctx.home).platform).SetPassword({ current: env.credentials.secret, password });
      } catch (err) {
        if (err instanceof MicroError && err.code === 400) throw new CliError(err.detail.replace(/^invalid request: /, ''));
        throw refused(err, env);
      }
      // the CLI keeps acting as the account: its stored secret is the new password now
      ctx.home.writeCredentials(env.name, { ...env.credentials, secret: password });
      const note = env.credentialSource === 'admin' ? ` (stored as the login of ${env.name}; ${ctx.home.serverDir}/admin.json still holds the old one)` : '';
      ctx.printer().info(`password of ${env.credentials.id} changed; its other sessions are ended${note}`);
    });
}

type LoggedIn = ResolvedEnv & { credentials: NonNullable<ResolvedEnv['credentials']>; address: string };

function loggedIn(ctx: CliContext): LoggedIn {
  const env = ctx.home.resolve();
  if (!env.address) throw noLocalServer();
  if (!env.credentials) throw new CliError(`not logged in to ${env.name} — run \`micro login\``);
  return env as LoggedIn;
}

/** Logged in with an email (micro signup, micro login --email): the account id is the address. */
function customerLogin(ctx: CliContext): LoggedIn {
  const env = loggedIn(ctx);
  if (!env.credentials.id.includes('@')) {
    throw new CliError(`${env.name} is logged in as account ${env.credentials.id}, not by email — namespaces are those of a customer: \`micro login --email <email>\``);
  }
  return env;
}

function tokenClient(env: LoggedIn) {
  return createClient(authApi, new Client({ address: env.address, namespace: 'micro', preferLocal: false, timeout: 10_000, middleware: [] }));
}

async function newPassword(ctx: CliContext, fromStdin: boolean): Promise<string> {
  if (!fromStdin && !ctx.io.stdin.isTTY) throw new UsageError('stdin is not a terminal to ask for the password — give it with --password-stdin');
  return fromStdin ? readPassword(ctx.io) : askNewPassword(ctx.io, 'nothing changed');
}

function refused(err: unknown, env: LoggedIn): CliError {
  if (err instanceof MicroError && err.code === 401 && err.id === 'auth') {
    return new CliError(`${env.name} refused the credentials of ${env.credentials.id}: ${err.detail} — run \`micro login\``);
  }
  return explainError(err, { env, address: env.address });
}
