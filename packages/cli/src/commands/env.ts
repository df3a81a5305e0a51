import type { Command } from 'commander';
import { Client, authService, createClient, MicroError } from '@micro/sdk';
import { LOCAL_ENV, displayAddress } from '../config.js';
import { explainError, noLocalServer } from '../connect.js';
import type { CliContext } from '../context.js';
import { CliError, UsageError } from '../output.js';
import { ask, askSecret, readAll } from '../prompt.js';
import { suggest } from '../flags.js';
import { loginWithEmail } from './signup.js';

/**
 * Environments and accounts: `micro env` (list, add, set, rm), `micro login`,
 * `micro logout`. Credentials are kept per environment in MICRO_HOME/credentials, 0600.
 */
export function registerEnvCommands(program: Command, ctx: CliContext): void {
  const env = program
    .command('env')
    .description('list the environments (servers) the CLI can talk to; * marks the current one')
    .argument('[words...]')
    .usage('[options] [command]')
    .option('-o, --output <format>', 'text or json')
    .action((words: string[], opts: { output?: string }) => {
      // a mistyped subcommand lands here as arguments
      const word = words[0];
      if (word !== undefined) {
        const close = suggest(word, ['add', 'set', 'rm']);
        throw new UsageError(`error: unknown command 'env ${word}'${close ? ` (Did you mean ${close}?)` : ''} — see \`micro env --help\``);
      }
      listEnvs(ctx, opts.output);
    });

  env
    .command('add <name> <address>')
    .description('add a remote environment, e.g. micro env add prod 10.0.0.5:8081')
    .action((name: string, address: string) => {
      const entry = ctx.home.addEnv(name, address);
      ctx.printer().info(`added environment ${name} (${displayAddress(entry.address)}) — use it with \`micro env set ${name}\`, then \`micro login\``);
    });

  env
    .command('set <name>')
    .description('make an environment the current one')
    .action((name: string) => {
      ctx.home.setCurrent(name);
      const loggedIn = ctx.home.resolve(name).credentials !== undefined;
      ctx.printer().info(`current environment: ${name}${loggedIn ? '' : ' — log in with `micro login`'}`);
    });

  env
    .command('rm <name>')
    .alias('remove')
    .description('remove an environment and its stored credentials')
    .action((name: string) => {
      const { wasCurrent } = ctx.home.removeEnv(name);
      ctx.printer().info(`removed environment ${name}${wasCurrent ? `; the current environment is now ${LOCAL_ENV}` : ''}`);
    });

  program
    .command('login')
    .description('log in to the current environment: by email and password (customers of the platform), or with an account id and secret')
    .option('--email <email>', 'log in as a customer: your namespaces are found for you')
    .option('--password <->', 'with --email: "-" reads the password from stdin (asked without echo when missing, on a terminal)')
    .option('--id <id>', 'the account id (asked when missing, on a terminal)')
    .option('--secret <secret>', 'the secret; "-" reads it from stdin (asked without echo when missing, on a terminal)')
    .option('--namespace <namespace>', 'the namespace of the account (default micro; with --email, your first)')
    .action((opts: { email?: string; password?: string; id?: string; secret?: string; namespace?: string }) => {
      if (opts.email === undefined) {
        if (opts.password !== undefined) throw new UsageError('--password goes with --email; an account id takes --secret');
        return login(ctx, opts);
      }
      if (opts.id !== undefined || opts.secret !== undefined) throw new UsageError('give either --email (and --password) or --id and --secret, not both');
      return loginWithEmail(ctx, { email: opts.email, password: opts.password, namespace: opts.namespace });
    });

  program
    .command('logout')
    .description('forget the credentials of the current environment')
    .action(() => {
      const name = ctx.home.currentEnvName();
      const removed = ctx.home.deleteCredentials(name);
      ctx.printer().info(removed ? `logged out of ${name}` : `not logged in to ${name}; nothing to do`);
    });
}

function listEnvs(ctx: CliContext, output: string | undefined): void {
  const out = ctx.printer(output);
  const server = ctx.home.serverInfo();
  const rows = ctx.home.listEnvs().map((e) => {
    const resolved = ctx.home.resolve(e.name);
    const address = e.name === LOCAL_ENV ? server?.address : e.address;
    const account = resolved.credentialSource === 'none' ? undefined : resolved.credentials?.id;
    return { ...e, address: address ?? null, account: account ?? null, via: resolved.credentialSource, namespace: resolved.namespace };
  });
  out.table(
    ['', 'NAME', 'ADDRESS', 'ACCOUNT'],
    rows.map((r) => [
      r.current ? '*' : '',
      r.name,
      r.address ? displayAddress(r.address) : r.name === LOCAL_ENV ? '(no server running: micro server)' : '-',
      r.account ? `${r.account}${r.via === 'admin' ? ' (local admin)' : ''}` : '(not logged in)',
    ]),
    rows,
  );
}

async function login(ctx: CliContext, opts: { id?: string; secret?: string; namespace?: string }): Promise<void> {
  const out = ctx.printer();
  const name = ctx.home.currentEnvName();
  const resolved = ctx.home.resolve(name);
  if (!resolved.address) throw noLocalServer();
  const tty = Boolean(ctx.io.stdin.isTTY);

  let id = opts.id?.trim();
  if (!id) {
    if (!tty || opts.secret === '-') throw new UsageError('give the account with --id (stdin is not a terminal to ask for it)');
    id = await ask(ctx.io, 'Account id: ');
    if (!id) throw new UsageError('an account id is needed');
  }
  let secret: string;
  if (opts.secret === '-') secret = (await readAll(ctx.io, 'the secret')).replace(/\r?\n$/, '');
  else if (opts.secret !== undefined) secret = opts.secret;
  else if (tty) secret = await askSecret(ctx.io, `Secret for ${id}: `);
  else throw new UsageError('give the secret with --secret, or --secret - to read it from stdin');
  if (!secret) throw new UsageError('the secret is empty');
  const namespace = opts.namespace || 'micro';

  const tokenClient = new Client({ address: resolved.address, namespace: 'micro', preferLocal: false, timeout: 10_000 });
  const auth = createClient(authService, tokenClient);
  let account: { id: string; issuer: string };
  try {
    ({ account } = await auth.Token({ id, secret, namespace }));
  } catch (err) {
    if (err instanceof MicroError && (err.code === 401 || err.code === 403)) {
      throw new CliError(`${name} refused the id and secret of ${id} in namespace ${namespace} — check them and run \`micro login\` again`);
    }
    throw explainError(err, { env: { name, credentialSource: 'none' }, address: resolved.address });
  }
  ctx.home.writeCredentials(name, { id, secret, namespace });
  out.info(`logged in to ${name} as ${account.id} (namespace ${account.issuer || namespace})`);
}
