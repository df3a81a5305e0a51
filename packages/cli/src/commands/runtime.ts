import { existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { Command, Option } from 'commander';
import { LOG_LEVELS, MicroError, RemoteBlobStore, TRACE_ID, isLogLevel, parseSince as parseLogSince, type ResponseStream, type RuntimeProgress, type RuntimeService } from '@micro/sdk';
import { LOCAL_ENV } from '../config.js';
import { connect, type Connection } from '../connect.js';
import { packFolder } from '../pack.js';
import type { CliContext } from '../context.js';
import { CliError, UsageError, formatDuration, type Printer } from '../output.js';

/**
 * The runtime's commands, thin wrappers over the runtime service of `micro server`:
 * `run`, `update`, `status`, `logs`, `kill`.
 */

interface RunFlags {
  name?: string;
  env?: string[];
  instances?: string;
  namespace?: string;
  output?: string;
}

export function registerRuntimeCommands(program: Command, ctx: CliContext): void {
  program
    .command('run <source>')
    .description('build a service from a folder or a git URL (with @ref) and run it')
    .option('--name <name>', 'the service name (default: package.json name or the folder name)')
    .addOption(new Option('--env <KEY=VALUE>', 'environment of the service (repeat for more)').argParser(collect).default(undefined))
    .option('--instances <n>', 'how many instances to run (default 1)')
    .option('--namespace <namespace>', 'another namespace than the account\'s (admins)')
    .option('-o, --output <format>', 'text or json (progress and the service as JSON lines)')
    .action(async (source: string, opts: RunFlags) => {
      const out = ctx.printer(opts.output);
      const request = {
        source: resolveSource(source),
        name: opts.name,
        namespace: opts.namespace,
        env: parseEnv(opts.env),
        instances: parseInstances(opts.instances),
      };
      const conn = connect(ctx.home, opts.namespace);
      request.source = await sendSource(out, conn, request.source, opts.namespace);
      const service = await followProgress(out, conn, () => conn.runtime.Create(request), `micro run ${source}`);
      summary(out, service, 'is running');
    });

  program
    .command('update <service> [source]')
    .description('rebuild a service from its source (or from a new folder or git URL) and replace its instances one by one')
    .option('--namespace <namespace>', 'another namespace than the account\'s (admins)')
    .option('-o, --output <format>', 'text or json')
    .action(async (name: string, source: string | undefined, opts: RunFlags) => {
      const out = ctx.printer(opts.output);
      const conn = connect(ctx.home, opts.namespace);
      const resolved = source === undefined ? undefined : await sendSource(out, conn, resolveSource(source), opts.namespace);
      const again = `micro update ${name}${source === undefined ? '' : ` ${source}`}`;
      const service = await followProgress(out, conn, () => conn.runtime.Update({ name, namespace: opts.namespace, source: resolved }), again, name);
      summary(out, service, 'is updated');
    });

  program
    .command('status [service]')
    .description('the services the runtime runs: state, instances, uptime, restarts, last error')
    .option('--namespace <namespace>', 'another namespace than the account\'s (admins)')
    .option('-o, --output <format>', 'text or json')
    .action(async (name: string | undefined, opts: RunFlags) => {
      const out = ctx.printer(opts.output);
      const conn = connect(ctx.home, opts.namespace);
      const { services } = await conn.runtime.Read({ name, namespace: opts.namespace }).catch((err: unknown) => {
        throw explainRuntime(conn, err, name);
      });
      if (name && services.length === 0) throw notRun(conn, name);
      if (!out.json && services.length === 0) {
        out.info(`the runtime runs no services in namespace ${conn.namespace} — start one with \`micro run ./<folder>\``);
        return;
      }
      // nats profile: services of every node, with the node that runs each
      if (services.some((s) => s.node)) out.table(['NODE', ...STATUS_HEADERS], services.map((s) => [nodeLabel(s), ...statusRow(s)]), services);
      else out.table(STATUS_HEADERS, services.map((s) => statusRow(s)), services);
    });

  program
    .command('logs [service]')
    .description('the log lines of a service (of every service of the namespace without one), oldest first')
    .option('-f, --follow', 'keep printing new lines until Ctrl-C')
    .option('-n, --lines <n>', 'how many of the last lines (default 100)')
    .option('--since <time>', 'only lines since an ISO time or a duration back (30s, 10m, 2h, 1d)')
    .option('--level <level>', 'only lines at or above a level: trace, debug, info, warn, error, fatal')
    .option('--trace <id>', 'only lines logged within a trace (32 hex digits)')
    .option('--namespace <namespace>', 'another namespace than the account\'s (admins)')
    .option('-o, --output <format>', 'text or json (one JSON line per log line)')
    .action(async (name: string | undefined, opts: RunFlags & LogsFlags) => {
      const out = ctx.printer(opts.output);
      const request = logsRequest(name, opts);
      const conn = connect(ctx.home, opts.namespace);
      const stream = conn.runtime.Logs(request);
      // Ctrl-C is how a follow ends: stop the stream and exit 0
      let interrupted = false;
      const onInterrupt = () => {
        interrupted = true;
        stream.cancel('interrupted');
      };
      process.once('SIGINT', onInterrupt);
      try {
        for await (const entry of stream) {
          if (out.json) out.value(entry);
          else out.line(`${name === undefined && entry.service ? `${entry.service} ` : ''}${entry.stream === 'runtime' ? `[runtime] ${entry.line}` : entry.line}`);
        }
      } catch (err) {
        if (!interrupted) throw explainRuntime(conn, err, name);
      } finally {
        process.removeListener('SIGINT', onInterrupt);
      }
    });

  program
    .command('kill <service>')
    .description('stop a service and forget it')
    .option('--namespace <namespace>', 'another namespace than the account\'s (admins)')
    .action(async (name: string, opts: RunFlags) => {
      const conn = connect(ctx.home, opts.namespace);
      await conn.runtime.Delete({ name, namespace: opts.namespace }).catch((err: unknown) => {
        throw explainRuntime(conn, err, name);
      });
      ctx.printer().info(`stopped ${name} (namespace ${conn.namespace})`);
    });
}

export interface LogsFlags {
  follow?: boolean;
  lines?: string;
  since?: string;
  level?: string;
  trace?: string;
}

/** The runtime.Logs request of `micro logs`, or a UsageError naming the flag that is wrong. */
export function logsRequest(name: string | undefined, opts: LogsFlags & { namespace?: string }, now = Date.now()) {
  const lines = opts.lines === undefined ? undefined : parseCount('--lines', opts.lines, 0, 100_000);
  let since: string | undefined;
  if (opts.since !== undefined) {
    try {
      since = new Date(parseLogSince(opts.since, now)).toISOString();
    } catch (err) {
      throw new UsageError(`--${(err as Error).message}`);
    }
  }
  const level = opts.level?.toLowerCase();
  if (level !== undefined && !isLogLevel(level)) throw new UsageError(`--level must be one of ${LOG_LEVELS.join(', ')}, not "${opts.level?.slice(0, 32)}"`);
  const traceId = opts.trace?.toLowerCase();
  if (traceId !== undefined && !TRACE_ID.test(traceId)) throw new UsageError(`--trace must be a trace id of 32 hex digits (as \`micro trace\` prints it), not "${opts.trace?.slice(0, 64)}"`);
  return { name, namespace: opts.namespace, lines, since, follow: opts.follow ?? false, level, traceId };
}

export const STATUS_HEADERS = ['NAME', 'VERSION', 'SOURCE', 'STATE', 'INSTANCES', 'PID', 'UPTIME', 'RESTARTS', 'LAST ERROR'];

/** The node of a service (its first 8 characters), with how long ago another node last reported. */
export function nodeLabel(s: RuntimeService, now = Date.now()): string {
  const id = (s.node ?? '-').slice(0, 8);
  return s.nodeSeenAt ? `${id} (${formatDuration(Math.max(0, now - Date.parse(s.nodeSeenAt)))} ago)` : id;
}

/** One row of `micro status`. */
export function statusRow(s: RuntimeService, now = Date.now()): string[] {
  const running = s.instances.filter((i) => i.state === 'running');
  const pids = s.instances.map((i) => i.pid).filter((p): p is number => typeof p === 'number');
  const started = running.map((i) => (i.startedAt ? Date.parse(i.startedAt) : NaN)).filter((t) => !Number.isNaN(t));
  const uptime = started.length ? formatDuration(now - Math.min(...started)) : '-';
  const restarts = s.instances.reduce((sum, i) => sum + i.restarts, 0);
  const lastError = s.instances.map((i) => i.lastError).find(Boolean) ?? s.build?.error ?? '';
  return [
    s.name,
    s.version || '-',
    s.source,
    s.state,
    `${running.length}/${s.desiredInstances}`,
    pids.length === 0 ? '-' : pids.length <= 2 ? pids.join(',') : `${pids[0]},+${pids.length - 1}`,
    uptime,
    String(restarts),
    firstLine(lastError),
  ];
}

/**
 * Prints the progress of Create/Update as it comes: the first message of a fetch,
 * install or build step is its title (• npm install), the following ones the tool's
 * output, indented; every start message is the runtime's own news (• starting 2
 * instances). On a failure the tool's output is shown (unless it was just streamed) and
 * the command fails.
 */
async function followProgress(out: Printer, conn: Connection, open: () => ResponseStream<RuntimeProgress>, again: string, name?: string): Promise<RuntimeService | undefined> {
  let step: string | undefined;
  const streamed = new Set<string>();
  let service: RuntimeService | undefined;
  try {
    for await (const p of open()) {
      if (out.json) out.value(p);
      else if (p.step === 'done') {
        // the summary says it
      } else if (p.step !== step || p.step === 'start') out.line(`• ${p.message}`);
      else {
        out.line(`    ${p.message}`);
        streamed.add(p.message.trim());
      }
      step = p.step;
      if (p.service) service = p.service;
    }
  } catch (err) {
    if (err instanceof MicroError && err.code === 400 && (step === 'install' || step === 'build' || step === 'fetch')) {
      const [head, ...output] = err.detail.split('\n');
      const shown = output.filter((l) => l.trim()).every((l) => streamed.has(l.trim()));
      out.warn(shown ? (head ?? '') : err.detail);
      throw new CliError(`the ${step} failed — fix what is reported above and run \`${again}\` again`);
    }
    throw explainRuntime(conn, err, name);
  }
  if (service && (service.state === 'error' || service.state === 'crashed')) {
    if (service.build?.error) out.warn(service.build.error);
    const why = service.instances.map((i) => i.lastError).find(Boolean);
    if (why) out.warn(why);
    throw new CliError(`${service.name} is ${service.state} — see \`micro logs ${service.name}\` and \`micro status ${service.name}\``);
  }
  return service;
}

function summary(out: Printer, service: RuntimeService | undefined, what: string): void {
  if (out.json || !service) return;
  const running = service.instances.filter((i) => i.state === 'running').length;
  const state = service.state === 'running' ? '' : `, state ${service.state}`;
  out.line(`${service.name} ${what} (namespace ${service.namespace}): ${running}/${service.desiredInstances} instance${service.desiredInstances === 1 ? '' : 's'} running${state}`);
  out.line(`  call it:  micro ${service.name} --help`);
  out.line(`  logs:     micro logs ${service.name} -f`);
  out.line(`  status:   micro status ${service.name}`);
}

function explainRuntime(conn: Connection, err: unknown, name: string | undefined): CliError {
  if (name && err instanceof MicroError && err.code === 404) return notRun(conn, name);
  return conn.explain(err);
}

function notRun(conn: Connection, name: string): CliError {
  return new CliError(`the runtime runs no service ${name} in namespace ${conn.namespace} — see \`micro status\`, or start it with \`micro run\``);
}

/**
 * Local folders are sent as absolute paths (the server does not know our working
 * directory); git URLs and anything that is not a folder here are sent as they are.
 * A local path may end with @ref only for git sources, so `./svc@v1` keeps its ref.
 */
export function resolveSource(source: string, cwd = process.cwd()): string {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(source) || /^git@/.test(source)) return source;
  const local = resolve(cwd, source);
  if (existsSync(local)) return local;
  const at = /^(.*)@([^/@]+)$/.exec(source);
  if (at && existsSync(resolve(cwd, at[1] as string))) return `${resolve(cwd, at[1] as string)}@${at[2]}`;
  if (/^(\.{1,2}|~)?\//.test(source) || source === '.' || source === '..') {
    throw new UsageError(`no such folder: ${local} — give the folder of a service (e.g. ./helloworld) or a git URL`);
  }
  return source;
}

/**
 * Whether the server may be sent a path of this machine: only the server of this
 * MICRO_HOME (environment `local`) reached with its admin account (admin.json), an
 * admin of `micro` on the same machine. Everyone else uploads the folder.
 */
export function sendsPaths(conn: Pick<Connection, 'env'>): boolean {
  return conn.env.name === LOCAL_ENV && conn.env.credentialSource === 'admin';
}

/**
 * The source to send for what resolveSource made of the argument: a folder of this
 * machine is packed and uploaded (upload:<key>) unless the server may read it itself;
 * anything else as it is.
 */
async function sendSource(out: Printer, conn: Connection, source: string, namespace: string | undefined): Promise<string> {
  if (sendsPaths(conn) || !source.startsWith('/')) return source;
  if (!existsSync(source) || !statSync(source).isDirectory()) {
    throw new UsageError(`${source.replace(/@[^/@]+$/, '')} at a git ref can be run only by the local admin on the server's machine — push it and give its https:// URL, or run the folder itself (its files are uploaded)`);
  }
  const packed = await packFolder(source);
  for (const skipped of packed.skipped) out.warn(`left out ${skipped}: only files and folders are uploaded (no links)`);
  if (!out.json) out.line(`• uploading ${source} (${packed.files} files, ${Math.ceil(packed.data.length / 1024)} KiB packed)`);
  const blobs = new RemoteBlobStore(conn.platform, namespace ? { namespace } : {});
  await blobs.put(packed.key, packed.data).catch((err: unknown) => {
    throw conn.explain(err);
  });
  return `upload:${packed.key}`;
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** `--env K=V` pairs; names as the runtime accepts them, values as given. */
export function parseEnv(pairs: string[] | undefined): Record<string, string> | undefined {
  if (!pairs || pairs.length === 0) return undefined;
  // no prototype: a variable named __proto__ is just a name here
  const env = Object.create(null) as Record<string, string>;
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    const key = eq === -1 ? pair : pair.slice(0, eq);
    if (eq <= 0 || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) throw new UsageError(`--env takes KEY=VALUE with KEY a variable name, not "${pair}"`);
    env[key] = pair.slice(eq + 1);
  }
  return env;
}

function parseInstances(value: string | undefined): number | undefined {
  return value === undefined ? undefined : parseCount('--instances', value, 1, 64);
}

function parseCount(flag: string, value: string, min: number, max: number): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || n < min || n > max) throw new UsageError(`${flag} must be a whole number from ${min} to ${max}, not "${value}"`);
  return n;
}

function firstLine(text: string): string {
  return text.split('\n').find((l) => l.trim()) ?? '';
}
