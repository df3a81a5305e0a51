import type { Command } from 'commander';
// WIRING: once @micro/sdk exports the config module, import RemoteConfig and the types from '@micro/sdk'.
import { CONFIG_LIMITS, RemoteConfig, type ConfigValue } from '@micro/sdk';
import { connect } from '../connect.js';
import type { CliContext } from '../context.js';
import { readAll } from '../prompt.js';
import { CliError, UsageError, type Printer } from '../output.js';

/**
 * `micro config get|set|delete`: the config of a namespace, a JSON document read and
 * written at dotted paths (`db.host`). Secrets are stored encrypted and print as
 * `••••••`; only `get --secret` shows them (admins of micro and accounts with scope
 * config:secrets), and nothing here ever echoes a value that was set.
 */

// eslint-disable-next-line no-control-regex -- control characters are what this finds
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

interface ConfigFlags {
  namespace?: string;
  output?: string;
  secret?: boolean;
  string?: boolean;
}

export function registerConfigCommands(program: Command, ctx: CliContext): void {
  const config = program
    .command('config')
    .description('the config of a namespace: JSON values at dotted paths, with encrypted secrets')
    .addHelpText(
      'after',
      `
Examples:
  micro config set db '{"host": "localhost", "port": 5432}'   objects merge into what is there
  micro config set db.port 5433                               JSON, or else a plain string
  micro config set db.password - --secret < password.txt      encrypted at rest, read from stdin
  micro config get db                                         secrets print as ••••••
  micro config get db.password --secret                       in clear (admins, scope config:secrets)
  micro config delete db.port`,
    );

  config
    .command('get [path]')
    .description('the value at a path (the whole config without one); secrets print as •••••• unless --secret')
    .option('--secret', 'show secrets in clear (admins of micro, or accounts with scope config:secrets)')
    .option('--namespace <namespace>', "another namespace than the account's (admins)")
    .option('-o, --output <format>', 'text or json')
    .action(async (path: string | undefined, opts: ConfigFlags) => {
      const out = ctx.printer(opts.output);
      const conn = connect(ctx.home, opts.namespace);
      const value = await new RemoteConfig(conn.platform).get(path ?? '', { namespace: opts.namespace, secrets: opts.secret === true }).catch((err: unknown) => {
        throw conn.explain(err);
      });
      if (value === undefined) throw new CliError(`nothing is set at ${path} in namespace ${conn.namespace} — see \`micro config get\``);
      printValue(out, value);
    });

  config
    .command('set <path> <value>')
    .description('merge a value in at a path: JSON if it parses (objects merge, anything else replaces), else a plain string; "-" reads it from stdin')
    .option('--secret', 'store the value encrypted; it prints as •••••• unless asked for with get --secret')
    .option('--string', 'store the value as a string even when it reads as JSON (e.g. "123")')
    .option('--namespace <namespace>', "another namespace than the account's (admins)")
    .action(async (path: string, raw: string, opts: ConfigFlags) => {
      const text = raw === '-' ? stripNewline(await readAll(ctx.io, 'the value')) : raw;
      const value = parseValue(text, opts.string === true);
      const conn = connect(ctx.home, opts.namespace);
      await new RemoteConfig(conn.platform).set(path, value, { namespace: opts.namespace, secret: opts.secret === true }).catch((err: unknown) => {
        throw conn.explain(err);
      });
      ctx.printer().info(`set ${path}${opts.secret ? ' (secret)' : ''} in namespace ${conn.namespace}`);
    });

  config
    .command('delete <path>')
    .description('remove what is at a path')
    .option('--namespace <namespace>', "another namespace than the account's (admins)")
    .action(async (path: string, opts: ConfigFlags) => {
      const conn = connect(ctx.home, opts.namespace);
      const deleted = await new RemoteConfig(conn.platform).delete(path, { namespace: opts.namespace }).catch((err: unknown) => {
        throw conn.explain(err);
      });
      ctx.printer().info(deleted ? `deleted ${path} in namespace ${conn.namespace}` : `nothing was set at ${path} in namespace ${conn.namespace}`);
    });
}

/**
 * What `micro config set` stores for what was typed: the JSON value when the text parses
 * as JSON (`5`, `true`, `null`, `"5"`, `[1]`, `{"a": 1}`), else the text as a string
 * (`localhost`, `hello world`). `--string` stores the text as it is.
 */
export function parseValue(text: string, asString = false): ConfigValue {
  if (Buffer.byteLength(text, 'utf8') > CONFIG_LIMITS.valueBytes) {
    throw new UsageError(`the value is ${Buffer.byteLength(text, 'utf8')} bytes: at most ${CONFIG_LIMITS.valueBytes} (256 KiB)`);
  }
  if (asString) return text;
  const trimmed = text.trim();
  if (trimmed === '') return text;
  try {
    return JSON.parse(trimmed) as ConfigValue;
  } catch {
    // a value that looks like JSON but is not is more likely a typo than a string
    if (/^[[{"]/.test(trimmed)) {
      throw new UsageError(`the value starts like JSON but is not valid JSON — fix it, or add --string to store it as a string`);
    }
    return text;
  }
}

/**
 * A value for people: a string as it is (quoted when it holds control characters, so
 * that nothing stored can send escapes to the terminal), anything else as indented JSON;
 * one compact JSON line with --output json.
 */
export function printValue(out: Printer, value: ConfigValue): void {
  if (!out.json && typeof value === 'string' && !CONTROL.test(value)) out.line(value);
  else out.value(value);
}

/** One trailing line break goes: `echo secret | micro config set x -` stores `secret`. */
function stripNewline(text: string): string {
  return text.replace(/\r?\n$/, '');
}

