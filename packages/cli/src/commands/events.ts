import { Command, Option } from 'commander';
import { MicroError } from '@micro/sdk';
// WIRING: from '@micro/sdk' once its index exports the events module
import { RemoteEvents, type Delivery, type Event, type GroupInfo, type RetentionPolicy, type StartOffset, type TopicInfo } from '@micro/sdk';
import { connect, type Connection } from '../connect.js';
import type { CliContext } from '../context.js';
import { CliError, UsageError, formatDuration, parseSince, sanitize, type Printer } from '../output.js';

/**
 * `micro events`: durable streams on the events service of `micro server`.
 *
 *   micro events publish <topic> [json] [--metadata k=v] [--id ID]
 *   micro events consume <topic> --group G [--offset earliest|latest|<time>|<n>] [-n N] [--no-ack]
 *   micro events read <topic> [--offset N] [--limit N] [--from <time>]
 *   micro events topics
 *   micro events groups <topic>
 *   micro events retention <topic> [--max-age 7d] [--max-events N] [--max-bytes 1GB] [--reset]
 */

interface CommonFlags {
  namespace?: string;
  output?: string;
}

/** The largest payload read from stdin: the events service takes 1 MiB of JSON. */
const MAX_STDIN = 2 * 1024 * 1024;

export function registerEventsCommands(program: Command, ctx: CliContext): void {
  const events = program
    .command('events')
    .description('durable event streams: publish, consume in groups, read the history')
    .addHelpText(
      'after',
      `
Events are stored before publish returns. Consumers join a group: the members of a
group share the events, every group sees all of them, and each event is acknowledged
(or handed out again after its ack wait, and after too many attempts sent to <topic>.dead).`,
    );

  events
    .command('publish <topic> [json]')
    .description('publish an event; the payload is JSON, read from stdin when absent or -')
    .addOption(new Option('--metadata <key=value>', 'metadata of the event (repeat for more)').argParser(collect).default(undefined))
    .option('--id <id>', 'de-duplication id: publishing it again returns the stored event')
    .option('--namespace <namespace>', "another namespace than the account's (admins)")
    .option('-o, --output <format>', 'text or json (the stored event)')
    .action(async (topic: string, json: string | undefined, opts: CommonFlags & { metadata?: string[]; id?: string }) => {
      const out = ctx.printer(opts.output);
      const metadata = parseMetadata(opts.metadata);
      const payload = parsePayload(json === undefined || json === '-' ? await readStdin(ctx) : json);
      const conn = connect(ctx.home, opts.namespace);
      const event = await new RemoteEvents(conn.platform)
        .publish(topic, payload, { metadata, id: opts.id, namespace: opts.namespace })
        .catch((err: unknown) => {
          throw explain(conn, err);
        });
      if (out.json) out.value(event);
      else out.line(`published ${event.topic} #${event.offset} (id ${event.id})`);
    });

  events
    .command('consume <topic>')
    .description('consume a topic in a group: print each event, then acknowledge it (Ctrl-C stops)')
    .requiredOption('-g, --group <group>', 'the consumer group (its members share the events)')
    .option('--offset <start>', "where a new group starts: earliest, latest (default), an offset, a time (ISO) or a duration back (10m)")
    .option('-n, --count <n>', 'stop after this many events')
    .option('--no-ack', 'do not acknowledge: the events go back to the group when the command ends')
    .option('--ack-wait <duration>', 'how long an event may stay unacknowledged (default 30s)')
    .option('--max-retries <n>', 'attempts after the first before the dead-letter topic (default 5)')
    .option('--dead-letter <topic>', 'the dead-letter topic (default <topic>.dead)')
    .option('--namespace <namespace>', "another namespace than the account's (admins)")
    .option('-o, --output <format>', 'text or json (one line per event)')
    .action(
      async (
        topic: string,
        opts: CommonFlags & { group: string; offset?: string; count?: string; ack: boolean; ackWait?: string; maxRetries?: string; deadLetter?: string },
      ) => {
        const out = ctx.printer(opts.output);
        const count = opts.count === undefined ? undefined : parseCount('--count', opts.count, 1, 1_000_000);
        const options = {
          group: opts.group,
          offset: opts.offset === undefined ? undefined : parseStartOffset(opts.offset),
          ackWait: opts.ackWait === undefined ? undefined : parseDuration('--ack-wait', opts.ackWait),
          maxRetries: opts.maxRetries === undefined ? undefined : parseCount('--max-retries', opts.maxRetries, 0, 1000),
          deadLetter: opts.deadLetter,
          namespace: opts.namespace,
          // -n N without acks must not block on the window: hold at most what it prints
          maxInFlight: count === undefined ? undefined : Math.min(count, 1000),
        };
        const conn = connect(ctx.home, opts.namespace);
        const consumer = await new RemoteEvents(conn.platform).consume(topic, options).catch((err: unknown) => {
          throw explain(conn, err);
        });
        // Ctrl-C ends the loop: what is not acknowledged goes back to the group
        let interrupted = false;
        const onInterrupt = () => {
          interrupted = true;
          void consumer.close();
        };
        process.once('SIGINT', onInterrupt);
        let seen = 0;
        try {
          for await (const d of consumer) {
            printDelivery(out, d);
            if (opts.ack) await d.ack();
            if (count !== undefined && ++seen >= count) break;
          }
        } catch (err) {
          if (!interrupted) throw explain(conn, err);
        } finally {
          process.removeListener('SIGINT', onInterrupt);
          await consumer.close();
        }
      },
    );

  events
    .command('read <topic>')
    .description('print the history of a topic, oldest first')
    .option('--offset <n>', 'the first offset to read (default the oldest held)')
    .option('--from <time>', 'or: from a time (ISO) or a duration back (10m, 2h, 1d)')
    .option('--limit <n>', 'at most this many events (default 100, at most 1000)')
    .option('--namespace <namespace>', "another namespace than the account's (admins)")
    .option('-o, --output <format>', 'text or json (the page: events, next, first, last)')
    .action(async (topic: string, opts: CommonFlags & { offset?: string; from?: string; limit?: string }) => {
      const out = ctx.printer(opts.output);
      if (opts.offset !== undefined && opts.from !== undefined) throw new UsageError('give --offset or --from, not both');
      const offset = opts.offset === undefined ? undefined : parseCount('--offset', opts.offset, 1, Number.MAX_SAFE_INTEGER);
      const from = opts.from === undefined ? undefined : parseTime('--from', opts.from);
      const limit = opts.limit === undefined ? undefined : parseCount('--limit', opts.limit, 1, 1000);
      const conn = connect(ctx.home, opts.namespace);
      const page = await new RemoteEvents(conn.platform).read(topic, { offset, from, limit, namespace: opts.namespace }).catch((err: unknown) => {
        throw explain(conn, err);
      });
      if (out.json) {
        out.value(page);
        return;
      }
      if (page.events.length === 0) out.info(`no events in ${topic} from there (it holds offsets ${page.first} to ${page.last})`);
      for (const e of page.events) out.line(eventLine(e));
      if (page.next !== undefined) out.info(`more: micro events read ${topic} --offset ${page.next}`);
    });

  events
    .command('topics')
    .description('the topics of the namespace, with their events and offsets')
    .option('--namespace <namespace>', "another namespace than the account's (admins)")
    .option('-o, --output <format>', 'text or json')
    .action(async (opts: CommonFlags) => {
      const out = ctx.printer(opts.output);
      const conn = connect(ctx.home, opts.namespace);
      const topics = await new RemoteEvents(conn.platform).topics({ namespace: opts.namespace }).catch((err: unknown) => {
        throw explain(conn, err);
      });
      if (!out.json && topics.length === 0) {
        out.info(`no topics in namespace ${conn.namespace} — publish one with \`micro events publish <topic> '<json>'\``);
        return;
      }
      out.table(TOPIC_HEADERS, topics.map((t) => topicRow(t)), topics);
    });

  events
    .command('groups <topic>')
    .description('the consumer groups of a topic, with their positions')
    .option('--namespace <namespace>', "another namespace than the account's (admins)")
    .option('-o, --output <format>', 'text or json')
    .action(async (topic: string, opts: CommonFlags) => {
      const out = ctx.printer(opts.output);
      const conn = connect(ctx.home, opts.namespace);
      const groups = await new RemoteEvents(conn.platform).groups(topic, { namespace: opts.namespace }).catch((err: unknown) => {
        throw explain(conn, err);
      });
      if (!out.json && groups.length === 0) {
        out.info(`no groups consume ${topic} — start one with \`micro events consume ${topic} --group <name>\``);
        return;
      }
      out.table(GROUP_HEADERS, groups.map(groupRow), groups);
    });

  events
    .command('retention <topic>')
    .description("show or set how long a topic keeps its events (fields not set take the server's defaults)")
    .option('--max-age <duration>', 'keep events this long (7d, 12h, 30m; 0 = no limit)')
    .option('--max-events <n>', 'keep the newest this many (0 = no limit)')
    .option('--max-bytes <size>', 'keep at most this much (512MB, 10GB; 0 = no limit)')
    .option('--reset', "return to the server's defaults")
    .option('--namespace <namespace>', "another namespace than the account's (admins)")
    .option('-o, --output <format>', 'text or json')
    .action(async (topic: string, opts: CommonFlags & { maxAge?: string; maxEvents?: string; maxBytes?: string; reset?: boolean }) => {
      const out = ctx.printer(opts.output);
      const policy: RetentionPolicy = {};
      if (opts.maxAge !== undefined) policy.maxAge = parseDuration('--max-age', opts.maxAge, true);
      if (opts.maxEvents !== undefined) policy.maxEvents = parseCount('--max-events', opts.maxEvents, 0, 1e12);
      if (opts.maxBytes !== undefined) policy.maxBytes = parseSize('--max-bytes', opts.maxBytes);
      const setting = opts.reset || Object.keys(policy).length > 0;
      if (opts.reset && Object.keys(policy).length > 0) throw new UsageError('give --reset or limits, not both');
      const conn = connect(ctx.home, opts.namespace);
      const api = new RemoteEvents(conn.platform);
      let info: TopicInfo | undefined;
      try {
        if (setting) info = await api.setRetention(topic, policy, { namespace: opts.namespace });
        else {
          info = (await api.topics({ namespace: opts.namespace })).find((t) => t.name === topic);
          if (!info) throw new CliError(`no topic ${topic} in namespace ${conn.namespace} — see \`micro events topics\``);
        }
      } catch (err) {
        throw explain(conn, err);
      }
      if (out.json) out.value({ topic: info.name, retention: info.retention ?? {} });
      else out.line(`${info.name}: ${retentionText(info.retention)}`);
    });
}

// ---- output --------------------------------------------------------------------------

export const TOPIC_HEADERS = ['TOPIC', 'EVENTS', 'SIZE', 'FIRST', 'LAST', 'LAST EVENT', 'RETENTION'];
export const GROUP_HEADERS = ['GROUP', 'COMMITTED', 'PENDING', 'IN FLIGHT', 'CONSUMERS'];

export function topicRow(t: TopicInfo, now = Date.now()): string[] {
  return [
    t.name,
    String(t.count),
    formatSize(t.bytes),
    t.count === 0 ? '-' : String(t.first),
    String(t.last),
    t.lastTimestamp ? `${formatDuration(now - t.lastTimestamp)} ago` : '-',
    t.retention ? retentionText(t.retention) : 'default',
  ];
}

export function groupRow(g: GroupInfo): string[] {
  return [g.name, String(g.committed), String(g.pending), String(g.inflight), String(g.members)];
}

export function retentionText(r: RetentionPolicy | undefined): string {
  if (!r || Object.keys(r).length === 0) return "the server's defaults";
  const parts: string[] = [];
  if (r.maxAge !== undefined) parts.push(r.maxAge === 0 ? 'any age' : `max age ${formatDuration(r.maxAge)}`);
  if (r.maxEvents !== undefined) parts.push(r.maxEvents === 0 ? 'any count' : `max ${r.maxEvents} events`);
  if (r.maxBytes !== undefined) parts.push(r.maxBytes === 0 ? 'any size' : `max ${formatSize(r.maxBytes)}`);
  return parts.join(', ');
}

/**
 * JSON on one line that a terminal shows as text: JSON escapes line breaks and C0
 * controls; C1 controls (\u009b starts an escape sequence on some terminals) and the
 * Unicode line separators are escaped here too. Still valid JSON.
 */
export function safeJson(value: unknown): string {
  return (JSON.stringify(value) ?? 'null').replace(/[\u007f-\u009f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** One event for people: offset, time, payload and metadata as JSON. */
export function eventLine(e: Event, attempt?: number): string {
  const meta = e.metadata && Object.keys(e.metadata).length > 0 ? `  ${safeJson(e.metadata)}` : '';
  const again = attempt !== undefined && attempt > 1 ? `  (attempt ${attempt})` : '';
  return `#${e.offset}  ${new Date(e.timestamp).toISOString()}  ${safeJson(e.payload)}${meta}${again}`;
}

function printDelivery(out: Printer, d: Delivery): void {
  if (out.json) out.value({ ...d.event, attempt: d.attempt });
  else out.line(eventLine(d.event, d.attempt));
}

export function formatSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

function explain(conn: Connection, err: unknown): CliError {
  if (err instanceof MicroError && err.code === 404 && /^no topic /.test(err.detail)) return new CliError(`${err.detail} — see \`micro events topics\``);
  if (err instanceof MicroError && err.code === 409) return new CliError(err.detail);
  if (err instanceof MicroError && err.code === 413) return new CliError(`${err.detail} — an event holds at most 1 MiB of JSON; store large data elsewhere and publish a reference`);
  return conn.explain(err);
}

// ---- parsing -------------------------------------------------------------------------

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** The payload: any JSON value. Text that is not JSON is refused with how to quote it. */
export function parsePayload(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new UsageError(`the payload must be JSON (${(err as Error).message}); quote text as a JSON string, e.g. '"hello"'`);
  }
}

/** `--metadata k=v` pairs. */
export function parseMetadata(pairs: string[] | undefined): Record<string, string> | undefined {
  if (!pairs || pairs.length === 0) return undefined;
  // no prototype: a key named __proto__ is just a key here
  const metadata = Object.create(null) as Record<string, string>;
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new UsageError(`--metadata takes key=value, not "${sanitize(pair).slice(0, 40)}"`);
    metadata[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return { ...metadata };
}

/** `--offset`: earliest, latest, an offset, an ISO time or a duration back. */
export function parseStartOffset(value: string, now = Date.now()): StartOffset {
  const v = value.trim();
  if (v === 'earliest' || v === 'latest') return v;
  if (/^\d+$/.test(v)) return { offset: parseCount('--offset', v, 1, Number.MAX_SAFE_INTEGER) };
  try {
    return { time: Date.parse(parseSince(v, now)) };
  } catch {
    throw new UsageError(`--offset must be earliest, latest, an offset (42), a time (2024-05-01T10:00:00Z) or a duration back (10m), not "${sanitize(value).slice(0, 40)}"`);
  }
}

/** A time: ISO, or a duration back from now (10m, 2h, 1d); epoch ms. */
export function parseTime(flag: string, value: string, now = Date.now()): number {
  try {
    return Date.parse(parseSince(value.trim(), now));
  } catch {
    throw new UsageError(`${flag} must be a time (2024-05-01T10:00:00Z) or a duration back (10m, 2h, 1d), not "${sanitize(value).slice(0, 40)}"`);
  }
}

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/;
const DURATION_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** A duration: 500ms, 30s, 10m, 2h, 7d (or plain milliseconds; 0 only where it means "no limit"). */
export function parseDuration(flag: string, value: string, zero = false): number {
  const v = value.trim();
  if (zero && v === '0') return 0;
  const m = DURATION.exec(v);
  const ms = m ? Math.round(Number(m[1]) * DURATION_MS[m[2] as keyof typeof DURATION_MS]) : /^\d+$/.test(v) ? Number(v) : NaN;
  if (!Number.isSafeInteger(ms) || ms <= 0) throw new UsageError(`${flag} must be a duration like 500ms, 30s, 10m, 2h or 7d${zero ? ' (0 for no limit)' : ''}, not "${sanitize(value).slice(0, 40)}"`);
  return ms;
}

const SIZE = /^(\d+(?:\.\d+)?)\s*(B|KB|KiB|MB|MiB|GB|GiB|TB|TiB)?$/i;
const SIZE_UNITS: Record<string, number> = { b: 1, kb: 1024, kib: 1024, mb: 1024 ** 2, mib: 1024 ** 2, gb: 1024 ** 3, gib: 1024 ** 3, tb: 1024 ** 4, tib: 1024 ** 4 };

/** A size: 1048576, 512MB, 10GB (binary units). */
export function parseSize(flag: string, value: string): number {
  const m = SIZE.exec(value.trim());
  const bytes = m ? Math.round(Number(m[1]) * (SIZE_UNITS[(m[2] ?? 'b').toLowerCase()] as number)) : NaN;
  if (!Number.isSafeInteger(bytes) || bytes < 0) throw new UsageError(`${flag} must be a size like 512MB or 10GB (0 for no limit), not "${sanitize(value).slice(0, 40)}"`);
  return bytes;
}

export function parseCount(flag: string, value: string, min: number, max: number): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || n < min || n > max) throw new UsageError(`${flag} must be a whole number from ${min} to ${max}, not "${sanitize(value).slice(0, 40)}"`);
  return n;
}

/** The payload from stdin (a pipe): bounded, so a runaway producer cannot fill memory. */
async function readStdin(ctx: CliContext): Promise<string> {
  const stdin = ctx.io.stdin;
  if (stdin.isTTY) throw new UsageError("give the payload as JSON (micro events publish <topic> '{\"id\":1}'), or pipe it in");
  let text = '';
  for await (const chunk of stdin) {
    text += typeof chunk === 'string' ? chunk : (chunk as Buffer).toString('utf8');
    if (text.length > MAX_STDIN) throw new UsageError(`the payload on stdin is larger than ${MAX_STDIN} bytes; an event holds at most 1 MiB of JSON`);
  }
  if (text.trim() === '') throw new UsageError("no payload: give it as JSON (micro events publish <topic> '{\"id\":1}'), or pipe it in");
  return text;
}
