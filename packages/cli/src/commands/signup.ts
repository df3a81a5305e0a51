import type { Command } from 'commander';
import { authApi, bearer, Client, createClient, MicroError, type TypedClient } from '@micro/sdk';
import { signupService } from '@micro/platform/client';
import { noLocalServer, explainError } from '../connect.js';
import type { CliContext } from '../context.js';
import type { ResolvedEnv } from '../config.js';
import { CliError, UsageError, type Printer } from '../output.js';
import { ask, askNewPassword, askSecret, readPassword } from '../prompt.js';

/**
 * `micro signup`: a stranger with an invite becomes a customer of the platform (M3O) and is
 * logged in to the current environment; `micro signup --waitlist <email>` joins the waiting
 * list; `micro signup recover <email>` has one's namespaces emailed. The login by email
 * (`micro login --email`) and the namespace commands of `micro user` share the helpers here.
 *
 * What is stored after a signup or a login by email: the account id (the email), the
 * password and the namespace, as `micro login --id --secret` stores them — the CLI then
 * exchanges them for tokens with auth.Token like any other credentials (see README.md).
 */

/** Code entries on a terminal before giving up (the server allows 5 checks per code). */
const CODE_TRIES = 3;

interface SignupOptions {
  email?: string;
  code?: string;
  password?: string;
  namespace?: string;
  waitlist?: string;
  output?: string;
}

export function registerSignupCommands(program: Command, ctx: CliContext): void {
  const signup = program
    .command('signup')
    .description('sign up to the platform (M3O) with an invited email: asks the email, the emailed code and a password, then logs in')
    .option('--email <email>', 'the invited address (asked when missing, on a terminal)')
    .option('--code <code>', 'the code emailed to it (without it, a code is sent first)')
    .option('--password <->', '"-" reads the password from stdin (asked twice without echo when missing, on a terminal)')
    .option('--namespace <name>', 'the namespace to make (default: a generated name such as brave-blue-otter)')
    .option('--waitlist <email>', 'join the waiting list instead')
    .option('-o, --output <format>', 'text or json ({email, namespace, namespaces})')
    .action((opts: SignupOptions) => (opts.waitlist !== undefined ? joinWaitlist(ctx, opts.waitlist, opts.output) : runSignup(ctx, opts)));

  signup
    .command('recover <email>')
    .description('email the list of your namespaces to your address')
    .action(async (email: string) => {
      const env = serverOf(ctx);
      await anonymousSignup(env)
        .Recover({ email })
        .catch((err: unknown) => {
          throw signupError(err, env);
        });
      ctx.printer().info(`if ${email} is a customer, the list of its namespaces is on its way there`);
    });
}

async function joinWaitlist(ctx: CliContext, email: string, output: string | undefined): Promise<void> {
  const out = ctx.printer(output);
  const env = serverOf(ctx);
  await anonymousSignup(env)
    .JoinWaitlist({ email })
    .catch((err: unknown) => {
      throw signupError(err, env);
    });
  if (out.json) return out.value({ email, waitlist: true });
  out.info(`${email} is on the waiting list of ${env.name}; an invite comes by email`);
}

async function runSignup(ctx: CliContext, opts: SignupOptions): Promise<void> {
  const out = ctx.printer(opts.output);
  const env = serverOf(ctx);
  const client = anonymousSignup(env);
  // stdin is either a terminal to ask on or the password (--password -), never both
  const interactive = Boolean(ctx.io.stdin.isTTY) && opts.password !== '-';
  if (opts.password !== undefined && opts.password !== '-') throw passwordFlagError();
  const email = opts.email?.trim() || (interactive ? await ask(ctx.io, 'Email: ') : '');
  if (!email) throw new UsageError('give the invited address with --email (stdin is not a terminal to ask for it) — see `micro signup --help`');

  if (opts.code === undefined) {
    await sendCode(client, env, email, out);
    if (!interactive) {
      out.info(`finish with: micro signup --email ${email} --code <the code> --password - (the password on stdin)`);
      return;
    }
  }
  const code = opts.code ?? (await askCode(ctx));
  const password = opts.password === '-' ? await readPassword(ctx.io) : await askNewPassword(ctx.io, 'nothing was sent');
  const session = await completeWithCode(ctx, client, env, { email, password, namespace: opts.namespace, code, askAgain: opts.code === undefined });
  ctx.home.writeCredentials(env.name, { id: session.account.id, secret: password, namespace: session.namespace });
  if (out.json) return out.value({ email: session.account.id, namespace: session.namespace, namespaces: session.namespaces });
  out.info(`signed up: your namespace is ${session.namespace}; logged in to ${env.name} as ${session.account.id}`);
  out.info('next: micro services · micro new <name> && micro run ./<name> · micro user namespaces');
}

async function sendCode(client: SignupClient, env: ServerEnv, email: string, out: Printer): Promise<void> {
  await client.SendCode({ email }).catch((err: unknown) => {
    throw signupError(err, env, email);
  });
  out.info(`a code is on its way to ${email} (valid 15 minutes)`);
}

type Session = Awaited<ReturnType<SignupClient['CompleteSignup']>>;

/** CompleteSignup; a wrong code that was asked on the terminal is asked again (the password is kept). */
async function completeWithCode(
  ctx: CliContext,
  client: SignupClient,
  env: ServerEnv,
  req: { email: string; password: string; namespace?: string; code: string; askAgain: boolean },
): Promise<Session> {
  for (let attempt = 1, code = req.code; ; attempt++, code = await askCode(ctx)) {
    try {
      const session = await client.CompleteSignup({ email: req.email, code, password: req.password, ...(req.namespace ? { namespace: req.namespace } : {}) });
      await endSession(env, session.refreshToken);
      return session;
    } catch (err) {
      const wrong = err instanceof MicroError && err.code === 401 && /^code: wrong code/.test(err.detail);
      if (!wrong || !req.askAgain || attempt >= CODE_TRIES) throw signupError(err, env, req.email);
      ctx.io.stderr.write(`${err.detail.replace(/^code: /, '')} — try again\n`);
    }
  }
}

async function askCode(ctx: CliContext): Promise<string> {
  const code = await ask(ctx.io, 'Code from the email: ');
  if (!code) throw new UsageError('the code is empty');
  return code;
}

// ---- login by email, shared with `micro login` and `micro user` ------------------------

export interface EmailLogin {
  email: string;
  password: string;
  namespace?: string;
}

/**
 * signup.Login with email and password: checks them for the namespace asked (default the
 * customer's first) and answers the customer's namespaces. The session it starts is ended
 * at once: the CLI keeps the password and exchanges it for tokens as it does any secret.
 */
export async function loginByEmail(env: ServerEnv, login: EmailLogin): Promise<{ account: string; namespace: string; namespaces: string[] }> {
  const { roles: _, ...res } = await loginWith(env, login, false);
  return res;
}

export type NamespaceRole = { namespace: string; role: 'owner' | 'admin' | 'developer' | 'viewer' };

/** loginByEmail, and the customer's role in each namespace (signup.Namespaces with the session's token). */
export async function namespacesByEmail(env: ServerEnv, login: EmailLogin): Promise<{ namespace: string; namespaces: NamespaceRole[] }> {
  const res = await loginWith(env, login, true);
  return { namespace: res.namespace, namespaces: res.roles ?? [] };
}

async function loginWith(env: ServerEnv, login: EmailLogin, roles: boolean): Promise<{ account: string; namespace: string; namespaces: string[]; roles?: NamespaceRole[] }> {
  try {
    const s = await anonymousSignup(env).Login({ email: login.email, password: login.password, ...(login.namespace ? { namespace: login.namespace } : {}) });
    try {
      const listed = roles ? (await sessionSignup(env, s.token).Namespaces({})).namespaces : undefined;
      return { account: s.account.id, namespace: s.namespace, namespaces: s.namespaces, ...(listed ? { roles: listed } : {}) };
    } finally {
      await endSession(env, s.refreshToken);
    }
  } catch (err) {
    if (err instanceof MicroError && err.code === 401 && err.id === 'signup') {
      const where = login.namespace ? ` for namespace ${login.namespace}` : '';
      throw new CliError(`${env.name} refused the email and password${where} — check them (your namespaces: \`micro signup recover ${login.email}\`)`);
    }
    throw signupError(err, env, login.email);
  }
}

/** `micro login --email`: logs in to the current environment by email; no namespace to know. */
export async function loginWithEmail(ctx: CliContext, opts: { email: string; password?: string; namespace?: string }): Promise<void> {
  const env = serverOf(ctx);
  if (opts.password !== undefined && opts.password !== '-') throw passwordFlagError();
  let password: string;
  if (opts.password === '-') password = await readPassword(ctx.io);
  else if (ctx.io.stdin.isTTY) password = await askSecret(ctx.io, `Password for ${opts.email}: `);
  else throw new UsageError('give the password on stdin with --password - (stdin is not a terminal to ask for it)');
  if (!password) throw new UsageError('the password is empty');
  const res = await loginByEmail(env, { email: opts.email.trim(), password, namespace: opts.namespace });
  ctx.home.writeCredentials(env.name, { id: res.account, secret: password, namespace: res.namespace });
  const out = ctx.printer();
  out.info(`logged in to ${env.name} as ${res.account} (namespace ${res.namespace})`);
  const others = res.namespaces.filter((n) => n !== res.namespace);
  if (others.length > 0) out.info(`your other namespaces: ${others.join(', ')} — switch with \`micro user namespace set <name>\``);
}

// ---- the pieces ----------------------------------------------------------------------

export type ServerEnv = ResolvedEnv & { address: string };
type SignupClient = TypedClient<typeof signupService>;

export function serverOf(ctx: CliContext): ServerEnv {
  const env = ctx.home.resolve();
  if (!env.address) throw noLocalServer();
  return env as ServerEnv;
}

/** The public endpoints of signup need no token: none is sent, whoever is logged in. */
function anonymousSignup(env: ServerEnv): SignupClient {
  return createClient(signupService, new Client({ address: env.address, namespace: 'micro', preferLocal: false, timeout: 15_000, middleware: [] }));
}

/** The signup service as the session of a login by email (its access token, for Namespaces). */
function sessionSignup(env: ServerEnv, token: string): SignupClient {
  return createClient(signupService, new Client({ address: env.address, namespace: 'micro', preferLocal: false, timeout: 15_000, middleware: [bearer(token)] }));
}

async function endSession(env: ServerEnv, refreshToken: string): Promise<void> {
  const auth = createClient(authApi, new Client({ address: env.address, namespace: 'micro', preferLocal: false, timeout: 10_000, middleware: [] }));
  // a session left behind only expires: nothing to tell the user
  await auth.Logout({ refreshToken }).catch(() => undefined);
}

export function passwordFlagError(): UsageError {
  return new UsageError('--password takes only "-" (the password on stdin): a password on the command line is visible to other users in `ps`');
}

/** signup's errors as what to do next. */
function signupError(err: unknown, env: ServerEnv, email?: string): CliError {
  if (!(err instanceof MicroError) || err.id !== 'signup') return explainError(err, { env, address: env.address });
  const detail = err.detail.replace(/^invalid request: /, '');
  if (err.code === 403 && /no invite/.test(detail)) {
    return new CliError(`${email ?? 'this address'} has no invite on ${env.name} — join the waiting list with \`micro signup --waitlist ${email ?? '<email>'}\`; customers log in with \`micro login --email <email>\``);
  }
  if (err.code === 401 && /^code: /.test(detail)) {
    return new CliError(`${detail.replace(/^code: /, '')} — a new code: \`micro signup --email ${email ?? '<email>'}\``);
  }
  if (err.code === 404 && /^No endpoint|not found/i.test(detail)) return new CliError(`${env.name} has no signup service (is it a platform server?): ${detail}`);
  return new CliError(detail);
}
