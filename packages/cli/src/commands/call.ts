import type { Command } from 'commander';
import { isPublicService, type Client, type EndpointRecord, type ResponseStream, type ServiceRecord } from '@micro/sdk';
import { connect, type Connection } from '../connect.js';
import type { CliContext } from '../context.js';
import { endpointHelp, endpointsOf, serviceHelp, takeEndpoint, matchEndpoint, commandName } from '../endpoints.js';
import { parseFlags, suggest, type JSONSchema } from '../flags.js';
import { CliError, UsageError, type Printer } from '../output.js';
import { jsonLines } from '../prompt.js';

/**
 * Calling services: `micro services`, `micro call`, `micro stream`, and the dynamic
 * commands `micro <service> <endpoint> --field=value` built from the registry's schemas.
 */

interface CallFlags {
  output?: string;
  namespace?: string;
  timeout?: string;
}

export function registerCallCommands(program: Command, ctx: CliContext): void {
  program
    .command('services')
    .description('list the services running in the namespace')
    .option('-o, --output <format>', 'text or json')
    .option('-n, --namespace <namespace>', 'another namespace than the account\'s (admins)')
    .action(async (opts: CallFlags) => {
      const out = ctx.printer(opts.output);
      const conn = connect(ctx.home, opts.namespace);
      const records = await conn.registry.listServices({ namespace: conn.namespace }).catch((err: unknown) => {
        throw conn.explain(err);
      });
      printServices(out, records, conn.namespace);
      // micro's public services answer this namespace's calls of names it does not hold
      if (!out.json && conn.namespace !== 'micro') {
        const shared = await conn.registry.listServices({ namespace: 'micro' }).catch(() => []);
        const names = [...new Set(shared.filter((r) => isPublicService(r) && !records.some((o) => o.name === r.name)).map((r) => r.name))].sort();
        if (names.length > 0) out.info(`public services (call them as your own, e.g. \`micro ${names[0]} --help\`): ${names.join(', ')}`);
      }
    });

  for (const name of ['call', 'stream'] as const) {
    program
      .command(`${name} <service> <endpoint> [request]`)
      .description(name === 'call' ? 'call an endpoint with a JSON request, e.g. micro call helloworld Call \'{"name":"Alice"}\'' : 'call a streaming endpoint and print each message as it arrives')
      .option('-o, --output <format>', 'text (pretty JSON) or json (one line per message)')
      .option('-n, --namespace <namespace>', 'another namespace than the account\'s (admins)')
      .option('-t, --timeout <ms>', 'how long a request/response call may take (default 30000)')
      .action(async (service: string, endpoint: string, body: string | undefined, opts: CallFlags) => {
        const out = ctx.printer(opts.output);
        const request = parseBody(body);
        const timeout = parseTimeout(opts.timeout);
        const conn = connect(ctx.home, opts.namespace);
        const { records, client } = await lookup(conn, service);
        const ep = matchEndpoint(endpointsOf(records), endpoint);
        if (!ep) throw noEndpoint(service, endpoint, records);
        await invoke(ctx, conn, client, out, service, ep, request, timeout);
      });
  }
}

/** The table of `micro services`, one row per version. */
export function printServices(out: Printer, records: readonly ServiceRecord[], namespace: string): void {
  const sorted = [...records].sort((a, b) => a.name.localeCompare(b.name) || a.version.localeCompare(b.version));
  if (!out.json && sorted.length === 0) {
    out.info(`no services in namespace ${namespace} — start one with \`micro run ./<folder>\` (or scaffold one with \`micro new <name>\`)`);
    return;
  }
  const rows = sorted.map((r) => [
    r.name,
    r.version,
    String(r.nodes.length),
    r.endpoints
      .filter((e) => !e.name.startsWith('Debug.'))
      .map((e) => e.name)
      .join(', '),
  ]);
  out.table(['NAME', 'VERSION', 'NODES', 'ENDPOINTS'], rows, sorted);
}

/**
 * `micro <service> [endpoint] [--flags]`, for a first word that is not a command. When
 * no service has that name either, the error says both (with a suggestion for typos).
 */
export async function runDynamic(ctx: CliContext, args: readonly string[], knownCommands: readonly string[]): Promise<void> {
  const [service, ...rest] = args as [string, ...string[]];
  // the words before the first flag or JSON body name the endpoint
  const firstFlag = rest.findIndex((a) => a.startsWith('-') || a.trimStart().startsWith('{'));
  const words = firstFlag === -1 ? rest : rest.slice(0, firstFlag);
  const flagArgs = firstFlag === -1 ? [] : rest.slice(firstFlag);
  const wantsHelp = flagArgs.includes('--help') || flagArgs.includes('-h');

  let conn: Connection;
  try {
    conn = connect(ctx.home);
  } catch (err) {
    throw unknownCommandOr(service, knownCommands, err as CliError);
  }
  const { records, client } = await conn.find(service).catch((err: unknown) => {
    throw unknownCommandOr(service, knownCommands, conn.explain(err));
  });
  if (records.length === 0) throw unknownService(service, conn.namespace, knownCommands);

  const endpoints = endpointsOf(records);
  if (words.length === 0) {
    // `micro helloworld` alone or with --help: what can be called
    ctx.io.stdout.write(serviceHelp(records));
    if (!wantsHelp) throw new CliError(`give an endpoint: micro ${service} <endpoint> [--field=value ...]`);
    return;
  }
  const { endpoint, rest: extra } = takeEndpoint(endpoints, words);
  if (!endpoint) throw noEndpoint(service, words.join(' '), records);
  const parsed = parseFlags([...extra, ...flagArgs], endpoint.request as JSONSchema, { helpCommand: `micro ${service} ${commandName(endpoint.name)} --help` });
  if (parsed.help) {
    ctx.io.stdout.write(endpointHelp(records[0] as ServiceRecord, endpoint));
    return;
  }
  // parseFlags leaves --output to the request when the endpoint has a field of that name
  const out = ctx.printer(parsed.output);
  await invoke(ctx, conn, client, out, service, endpoint, parsed.request, undefined);
}

/** Calls an endpoint of any kind (with the client of the namespace serving it) and prints what comes back. */
async function invoke(ctx: CliContext, conn: Connection, client: Client, out: Printer, service: string, ep: EndpointRecord, request: unknown, timeout: number | undefined): Promise<void> {
  const input = ep.kind === 'client' || ep.kind === 'bidi' ? requestsFor(ctx, request) : undefined;
  try {
    switch (ep.kind) {
      case 'unary':
        out.value(await client.call(service, ep.name, request, { timeout }));
        return;
      case 'client':
        out.value(await client.stream(service, ep.name, 'client', input?.requests));
        return;
      case 'server':
      case 'bidi': {
        const stream = client.stream(service, ep.name, ep.kind, ep.kind === 'server' ? request : input?.requests) as ResponseStream<unknown>;
        for await (const message of stream) out.value(message);
        return;
      }
    }
  } catch (err) {
    // a bad line of stdin cancels the stream; say what was wrong with it, not what the
    // cancelled call reports
    throw input?.failure() ?? conn.explain(err, service);
  }
}

/**
 * The requests of a client or bidi stream: the one given with flags or as JSON, else
 * one JSON value per line of stdin (typed interactively on a terminal).
 */
function requestsFor(ctx: CliContext, request: unknown): { requests: Iterable<unknown> | AsyncIterable<unknown>; failure: () => Error | undefined } {
  const given = request !== undefined && !(typeof request === 'object' && request !== null && Object.keys(request).length === 0);
  if (given) return { requests: [request], failure: () => undefined };
  let failed: Error | undefined;
  const lines = jsonLines(ctx.io);
  async function* requests(): AsyncGenerator<unknown> {
    try {
      yield* lines;
    } catch (err) {
      failed = err as Error;
      throw err;
    }
  }
  return { requests: requests(), failure: () => failed };
}

async function lookup(conn: Connection, service: string): Promise<{ records: ServiceRecord[]; client: Client }> {
  const found = await conn.find(service).catch((err: unknown) => {
    throw conn.explain(err);
  });
  if (found.records.length === 0) throw new CliError(`service ${service} not found in namespace ${conn.namespace} — see \`micro services\``);
  return found;
}

function parseBody(body: string | undefined): unknown {
  if (body === undefined || body.trim() === '') return {};
  try {
    return JSON.parse(body) as unknown;
  } catch (err) {
    throw new UsageError(`the request is not valid JSON (${(err as Error).message}) — give it in single quotes, e.g. '{"name":"Alice"}'`);
  }
}

function parseTimeout(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0 || n > 24 * 3_600_000) throw new UsageError(`--timeout must be a number of milliseconds (1 to 86400000), not "${value}"`);
  return n;
}

function noEndpoint(service: string, typed: string, records: readonly ServiceRecord[]): CliError {
  const names = endpointsOf(records).map((e) => commandName(e.name));
  const close = suggest(typed, names);
  return new UsageError(
    `service ${service} has no endpoint "${typed}"${close ? ` (did you mean "${close}"?)` : ''} — endpoints: ${names.join(', ')}; see \`micro ${service} --help\``,
  );
}

function unknownService(word: string, namespace: string, knownCommands: readonly string[]): CliError {
  const close = suggest(word, knownCommands);
  if (close) return new UsageError(`error: unknown command '${word}' (Did you mean ${close}?) — see \`micro --help\``);
  return new UsageError(`error: unknown command or service '${word}': no service of that name in namespace ${namespace} — see \`micro --help\` and \`micro services\``);
}

/** The server could not say whether `word` is a service: report both possibilities. */
function unknownCommandOr(word: string, knownCommands: readonly string[], cause: CliError): CliError {
  const close = suggest(word, knownCommands);
  if (close) return new UsageError(`error: unknown command '${word}' (Did you mean ${close}?) — see \`micro --help\``);
  return new CliError(`'${word}' is not a command — see \`micro --help\`; to call a service of that name: ${cause.message}`, cause.exitCode);
}
