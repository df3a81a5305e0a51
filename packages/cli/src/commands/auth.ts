import type { Command } from 'commander';
import { authApi, createClient, type AccountInfo, type KeyInfo, type Rule, type TypedClient } from '@micro/sdk';
import { connect, type Connection } from '../connect.js';
import type { CliContext } from '../context.js';
import { UsageError } from '../output.js';
import { readAll } from '../prompt.js';

/**
 * `micro auth`: accounts, rules and API keys of a namespace, over the auth service.
 *
 *   micro auth create account <id> [--type user|service] [--secret S|-] [--scopes a,b] [--metadata k=v]
 *   micro auth create rule <id> --resource service:x:* --scope '*' --access granted --priority 10
 *   micro auth create key <name> [--description D] [--services a,b|*] [--scopes a,b] [--expires 30d]
 *   micro auth list accounts|rules|keys
 *   micro auth delete account|rule|key <id>       (a key: revoked)
 *   micro auth block key <id> --message M          (admins of micro)
 *   micro auth unblock key <id>                    (admins of micro)
 *   micro auth rotate        (a new signing key; admins of micro)
 *
 * Every command acts in the namespace of the logged-in account; `--namespace` names
 * another (admins of micro).
 */

interface Common {
  namespace?: string;
  output?: string;
}

function api(conn: Connection): TypedClient<typeof authApi> {
  return createClient(authApi, conn.platform);
}

export function registerAuthCommands(program: Command, ctx: CliContext): void {
  const auth = program.command('auth').description('manage accounts, access rules and API keys');
  const create = auth.command('create').description('create an account, a rule or an API key');
  const list = auth.command('list').alias('ls').description('list the accounts, rules or API keys of a namespace');
  const del = auth.command('delete').alias('rm').description('delete an account, a rule or an API key');

  create
    .command('account <id>')
    .description('create an account; without --secret a secret is generated and printed once')
    .option('--type <type>', 'user or service', 'user')
    .option('--secret <secret>', 'its password or secret (at least 8 characters); "-" reads it from stdin')
    .option('--scopes <scopes>', 'comma-separated scopes, e.g. admin,developer')
    .option('--metadata <k=v>', 'a label of the account (repeat for more)', collect)
    .option('--namespace <namespace>', "another namespace than the account's (admins of micro)")
    .option('-o, --output <format>', 'text or json')
    .action(async (id: string, opts: Common & { type: string; secret?: string; scopes?: string; metadata?: string[] }) => {
      const out = ctx.printer(opts.output);
      const type = parseAccountType(opts.type);
      const secret = opts.secret === '-' ? (await readAll(ctx.io, 'the secret')).replace(/\r?\n$/, '') : opts.secret;
      const conn = connect(ctx.home, opts.namespace);
      const res = await api(conn)
        .CreateAccount({ id, type, secret, scopes: parseScopes(opts.scopes), metadata: parseMetadata(opts.metadata), namespace: opts.namespace })
        .catch((err: unknown) => {
          throw conn.explain(err);
        });
      if (out.json) return out.value(res);
      out.info(`created ${res.account.type} account ${res.account.id} in namespace ${res.account.issuer}${res.account.scopes.length ? ` with scopes ${res.account.scopes.join(', ')}` : ''}`);
      if (res.secret) {
        out.line(`secret: ${res.secret}`);
        out.info('the secret is shown only now: keep it (log in with `micro login --id ... --namespace ...`)');
      }
    });

  create
    .command('rule <id>')
    .description('create an access rule: who (scope) may or may not (access) call what (resource)')
    .requiredOption('--resource <resource>', 'type:name:endpoint with * wildcards, e.g. service:helloworld:*')
    .requiredOption('--scope <scope>', "'' anyone (public), '*' any account of the namespace, or a scope")
    .option('--access <access>', 'granted or denied', 'granted')
    .option('--priority <n>', 'higher is evaluated first (default 0)', '0')
    .option('--namespace <namespace>', "another namespace than the account's (admins of micro)")
    .option('-o, --output <format>', 'text or json')
    .action(async (id: string, opts: Common & { resource: string; scope: string; access: string; priority: string }) => {
      const out = ctx.printer(opts.output);
      const rule = { id, resource: opts.resource, scope: opts.scope, access: parseAccess(opts.access), priority: parsePriority(opts.priority) };
      const conn = connect(ctx.home, opts.namespace);
      const res = await api(conn)
        .CreateRule({ ...rule, namespace: opts.namespace })
        .catch((err: unknown) => {
          throw conn.explain(err);
        });
      if (out.json) return out.value(res.rule);
      out.info(`created rule ${res.rule.id} in namespace ${res.rule.namespace}: ${describeRule(res.rule)}`);
    });

  create
    .command('key <name>')
    .description('create an API key for your account; it is printed once')
    .option('--description <text>', 'what the key is for')
    .option('--services <services>', 'comma-separated services it may call through the gateway, or * for any (default *)')
    .option('--scopes <scopes>', "comma-separated permission scopes of your account it acts with (default: the account's)")
    .option('--expires <duration>', 'how long it works, e.g. 90d, 12h (default: until revoked)')
    .option('-o, --output <format>', 'text or json')
    .action(async (name: string, opts: Common & { description?: string; services?: string; scopes?: string; expires?: string }) => {
      const out = ctx.printer(opts.output);
      const expiresIn = opts.expires === undefined ? undefined : parseExpires(opts.expires);
      const services = parseServices(opts.services);
      const conn = connect(ctx.home);
      const res = await api(conn)
        .CreateKey({ name, description: opts.description, services, scopes: parseScopes(opts.scopes), expiresIn })
        .catch((err: unknown) => {
          throw conn.explain(err);
        });
      if (out.json) return out.value(res);
      // the key alone on stdout, so that `export MICRO_API_KEY=$(micro auth create key mine)` keeps it; the note for people on stderr
      out.line(res.key);
      out.warn(
        `API key ${res.info.id} (${name}) of ${res.info.account}, for ${servicesLabel(res.info.services)} — shown only now: keep it. Use it as "Authorization: Bearer <key>" at the gateway, or exchange it with auth.Token {apiKey}.`,
      );
    });

  list
    .command('accounts')
    .alias('account')
    .description('the accounts of the namespace')
    .option('--namespace <namespace>', "another namespace than the account's (admins of micro)")
    .option('-o, --output <format>', 'text or json')
    .action(async (opts: Common) => {
      const out = ctx.printer(opts.output);
      const conn = connect(ctx.home, opts.namespace);
      const accounts: AccountInfo[] = [];
      let after: string | undefined;
      try {
        do {
          const page = await api(conn).ListAccounts({ namespace: opts.namespace, limit: 1000, after });
          accounts.push(...page.accounts);
          after = page.next;
        } while (after);
      } catch (err) {
        throw conn.explain(err);
      }
      out.table(ACCOUNT_HEADERS, accounts.map(accountRow), accounts);
    });

  list
    .command('rules')
    .alias('rule')
    .description('the access rules of the namespace, in the order they are evaluated')
    .option('--namespace <namespace>', "another namespace than the account's (admins of micro)")
    .option('-o, --output <format>', 'text or json')
    .action(async (opts: Common) => {
      const out = ctx.printer(opts.output);
      const conn = connect(ctx.home, opts.namespace);
      const { rules } = await api(conn)
        .ListRules({ namespace: opts.namespace })
        .catch((err: unknown) => {
          throw conn.explain(err);
        });
      out.table(RULE_HEADERS, rules.map(ruleRow), rules);
    });

  list
    .command('keys')
    .alias('key')
    .description('API keys: yours, or all of the namespace for its admins')
    .option('--namespace <namespace>', "another namespace than the account's (admins of micro)")
    .option('-o, --output <format>', 'text or json')
    .action(async (opts: Common) => {
      const out = ctx.printer(opts.output);
      const conn = connect(ctx.home, opts.namespace);
      const { keys } = await api(conn)
        .ListKeys({ namespace: opts.namespace })
        .catch((err: unknown) => {
          throw conn.explain(err);
        });
      out.table(KEY_HEADERS, keys.map((k) => keyRow(k)), keys);
    });

  for (const [what, remove] of [
    ['account', (a: TypedClient<typeof authApi>, id: string, namespace?: string) => a.DeleteAccount({ id, namespace })],
    ['rule', (a: TypedClient<typeof authApi>, id: string, namespace?: string) => a.DeleteRule({ id, namespace })],
    ['key', (a: TypedClient<typeof authApi>, id: string, namespace?: string) => a.RevokeKey({ id, namespace })],
  ] as const) {
    del
      .command(`${what} <id>`)
      .description(what === 'key' ? 'revoke an API key (by its id, the part before the dot)' : `delete a${what === 'account' ? 'n' : ''} ${what}`)
      .option('--namespace <namespace>', "another namespace than the account's (admins of micro)")
      .action(async (id: string, opts: Common) => {
        const conn = connect(ctx.home, opts.namespace);
        await remove(api(conn), id, opts.namespace).catch((err: unknown) => {
          throw conn.explain(err);
        });
        ctx.printer().info(`${what === 'key' ? 'revoked' : 'deleted'} ${what} ${id} (namespace ${conn.namespace})`);
      });
  }

  auth
    .command('block')
    .description('block an API key (admins of micro)')
    .command('key <id>')
    .description('block an API key: its calls are refused with 403 v1.blocked and the message, until unblocked; its tokens stop')
    .requiredOption('--message <text>', 'what its callers are told, e.g. "unpaid invoice: contact billing@example.com"')
    .option('--namespace <namespace>', "the key's namespace (default: your own)")
    .option('-o, --output <format>', 'text or json')
    .action(async (id: string, opts: Common & { message: string }) => {
      const out = ctx.printer(opts.output);
      const conn = connect(ctx.home, opts.namespace);
      const { key } = await api(conn)
        .BlockKey({ id, message: opts.message, namespace: opts.namespace })
        .catch((err: unknown) => {
          throw conn.explain(err);
        });
      if (out.json) return out.value(key);
      out.info(`blocked API key ${key.id} (${key.name}) of ${key.account} in namespace ${key.namespace}: its callers are told "${key.blockMessage ?? ''}"`);
    });

  auth
    .command('unblock')
    .description('unblock an API key (admins of micro)')
    .command('key <id>')
    .description('lift the block of an API key: it works again')
    .option('--namespace <namespace>', "the key's namespace (default: your own)")
    .option('-o, --output <format>', 'text or json')
    .action(async (id: string, opts: Common) => {
      const out = ctx.printer(opts.output);
      const conn = connect(ctx.home, opts.namespace);
      const { key } = await api(conn)
        .UnblockKey({ id, namespace: opts.namespace })
        .catch((err: unknown) => {
          throw conn.explain(err);
        });
      if (out.json) return out.value(key);
      out.info(`unblocked API key ${key.id} (${key.name}) of ${key.account} in namespace ${key.namespace}`);
    });

  auth
    .command('update')
    .description('change an account')
    .command('account <id>')
    .description("disable or enable an account, or replace its scopes; the tokens it holds stop at once")
    .option('--disable', 'no more tokens, logins or API keys for it')
    .option('--enable', 'undo --disable')
    .option('--scopes <scopes>', 'comma-separated scopes that replace its scopes ("" for none)')
    .option('--namespace <namespace>', "another namespace than the account's (admins of micro)")
    .option('-o, --output <format>', 'text or json')
    .action(async (id: string, opts: Common & { disable?: boolean; enable?: boolean; scopes?: string }) => {
      if (opts.disable && opts.enable) throw new UsageError('give --disable or --enable, not both');
      const disabled = opts.disable ? true : opts.enable ? false : undefined;
      const scopes = parseScopes(opts.scopes);
      if (disabled === undefined && scopes === undefined) throw new UsageError('give --disable, --enable or --scopes');
      const out = ctx.printer(opts.output);
      const conn = connect(ctx.home, opts.namespace);
      const { account } = await api(conn)
        .UpdateAccount({ id, disabled, scopes, namespace: opts.namespace })
        .catch((err: unknown) => {
          throw conn.explain(err);
        });
      if (out.json) return out.value(account);
      out.info(`account ${account.id} (namespace ${account.issuer}) is ${account.disabled ? 'disabled' : 'enabled'}, scopes ${account.scopes.join(', ') || '(none)'}; its earlier tokens no longer work`);
    });

  auth
    .command('rotate')
    .description('start signing tokens with a new key (admins of micro); tokens of the old key work until they expire')
    .action(async () => {
      const conn = connect(ctx.home);
      const { kid } = await api(conn)
        .RotateKeys({})
        .catch((err: unknown) => {
          throw conn.explain(err);
        });
      ctx.printer().info(`tokens are now signed with key ${kid}`);
    });
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

export function parseAccountType(value: string): 'user' | 'service' {
  if (value === 'user' || value === 'service') return value;
  throw new UsageError(`--type must be user or service, not "${value}"`);
}

/** `a,b , c` → [a, b, c]; undefined stays undefined (the server's default applies). */
export function parseScopes(value: string | undefined): string[] | undefined {
  if (value === undefined) return undefined;
  return [...new Set(value.split(',').map((s) => s.trim()).filter(Boolean))];
}

/** `--metadata k=v` pairs. */
export function parseMetadata(pairs: string[] | undefined): Record<string, string> | undefined {
  if (!pairs || pairs.length === 0) return undefined;
  const out = Object.create(null) as Record<string, string>;
  for (const pair of pairs) {
    const i = pair.indexOf('=');
    if (i <= 0) throw new UsageError(`--metadata must be KEY=VALUE, not "${pair}"`);
    out[pair.slice(0, i)] = pair.slice(i + 1);
  }
  return { ...out };
}

export function parseAccess(value: string): 'granted' | 'denied' {
  if (value === 'granted' || value === 'denied') return value;
  throw new UsageError(`--access must be granted or denied, not "${value}"`);
}

export function parsePriority(value: string): number {
  const n = Number(value);
  if (!/^-?\d+$/.test(value.trim()) || Math.abs(n) > 1_000_000) throw new UsageError(`--priority must be a whole number from -1000000 to 1000000, not "${value}"`);
  return n;
}

/** `--services a,b` or `*` → the list; undefined stays undefined (any service); an empty list is a usage error. */
export function parseServices(value: string | undefined): string[] | undefined {
  const list = parseScopes(value);
  if (list !== undefined && list.length === 0) throw new UsageError('--services must name at least one service, or * for any');
  return list;
}

function servicesLabel(services: string[]): string {
  return services.includes('*') ? 'any service' : `services ${services.join(', ')}`;
}

/** `90d`, `12h`, `30m`, `3600s` or plain seconds → seconds (at least a minute, at most ten years). */
export function parseExpires(value: string): number {
  const m = /^(\d+)(s|m|h|d)?$/.exec(value.trim());
  const seconds = m ? Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86_400 }[(m[2] ?? 's') as 's' | 'm' | 'h' | 'd'] : NaN;
  if (!Number.isFinite(seconds) || seconds < 60 || seconds > 10 * 365 * 86_400) {
    throw new UsageError(`--expires must be a duration from 1m to 3650d, like 90d or 12h, not "${value}"`);
  }
  return seconds;
}

const date = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

export const ACCOUNT_HEADERS = ['ID', 'TYPE', 'NAMESPACE', 'SCOPES', 'METADATA', 'CREATED'];
export function accountRow(a: AccountInfo): string[] {
  const md = Object.entries(a.metadata ?? {}).map(([k, v]) => `${k}=${v}`);
  return [a.id, a.type, a.issuer, a.scopes.join(',') || '-', md.join(',') || '-', date(a.createdAt)];
}

export const RULE_HEADERS = ['ID', 'RESOURCE', 'SCOPE', 'ACCESS', 'PRIORITY'];
export function ruleRow(r: Rule): string[] {
  return [r.id, r.resource, scopeLabel(r.scope), r.access, String(r.priority)];
}

export const KEY_HEADERS = ['ID', 'NAME', 'ACCOUNT', 'DESCRIPTION', 'SERVICES', 'SCOPES', 'CREATED', 'LAST USED', 'EXPIRES', 'STATUS'];
export function keyRow(k: KeyInfo, now = Date.now()): string[] {
  return [
    k.id,
    k.name,
    k.account,
    k.description || '-',
    k.services.join(',') || '-',
    k.scopes.join(',') || '-',
    date(k.createdAt),
    k.lastUsedAt === undefined ? 'never' : date(k.lastUsedAt),
    k.expiresAt === undefined ? 'never' : date(k.expiresAt),
    keyStatus(k, now),
  ];
}

/** active, expired, or blocked with its message (the last column: a message may have spaces). */
export function keyStatus(k: KeyInfo, now = Date.now()): string {
  if (k.blocked) return `blocked: ${k.blockMessage ?? ''}`;
  return k.expiresAt !== undefined && k.expiresAt <= now ? 'expired' : 'active';
}

function scopeLabel(scope: string): string {
  return scope === '' ? "'' (public)" : scope === '*' ? '* (any account)' : scope;
}

export function describeRule(r: Rule): string {
  return `${r.access === 'granted' ? 'grants' : 'denies'} ${r.resource} to ${scope(r.scope)} at priority ${r.priority}`;
}

function scope(s: string): string {
  return s === '' ? 'everyone (no token needed)' : s === '*' ? 'any account of the namespace' : `accounts with scope ${s}`;
}
