import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { appendFile, open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { effectiveLevel, errors, isLogLevel, levelNumber, lineFields, parseSince, TRACE_ID, type LineFilter, type LogLevel } from '@micro/sdk';

/**
 * The log of a service: one JSON object per line, `{t, i, s, l}` (ISO time, instance id,
 * stream, line), in <home>/logs/<namespace>/<service>.log. Every instance of the service
 * and the runtime itself (builds, starts, crashes, as stream `runtime`) write to it
 * through one LogFile, so lines are never interleaved mid-line. At `maxBytes` the file
 * is rotated to `<service>.log.1` (one previous file is kept).
 *
 * Memory is bounded whatever a service prints: lines are cut at 16 KiB (lines.ts), lines
 * waiting for the disk at 8 MiB and a follower's backlog at 10 000 lines / 4 MiB; past
 * those the oldest waiting lines are dropped first, counted (`dropped`), and a note
 * saying how many is written in their place.
 */

export type LogStream = 'stdout' | 'stderr' | 'runtime';

export interface Entry {
  t: string;
  i: string;
  s: LogStream;
  l: string;
}

export interface LogLine {
  time: string;
  instance: string;
  stream: LogStream;
  line: string;
  /** the service (the file's name) */
  service?: string;
  /** the level and trace id the line itself carries (JSON log lines) */
  level?: LogLevel;
  traceId?: string;
}

export interface HistoryOptions extends LineFilter {
  /** how many of the last lines (that pass the filter) */
  lines: number;
}

export interface ReadOptions extends HistoryOptions {
  follow?: boolean | undefined;
  signal?: AbortSignal | undefined;
}

/** Where the history of a read ends: the file as it was when the read began. */
interface End {
  generation: number;
  size: number;
}

/** What `micro logs` asks the runtime (runtime.Logs); checked again here for callers in-process. */
export interface LogsRequest {
  /** the service; without it every service of the namespace */
  name?: string | undefined;
  namespace?: string | undefined;
  lines?: number | undefined;
  /** an ISO time or a duration back (10m) */
  since?: string | undefined;
  follow?: boolean | undefined;
  level?: string | undefined;
  traceId?: string | undefined;
}

/** The read options of a request, or a BadRequest naming the field that is wrong. */
export function logsOptions(req: LogsRequest, signal?: AbortSignal): ReadOptions {
  const lines = req.lines ?? 100;
  if (!Number.isInteger(lines) || lines < 0 || lines > 100_000) throw errors.BadRequest('runtime', 'lines must be between 0 and 100000');
  let since: number | undefined;
  if (req.since !== undefined) {
    try {
      since = parseSince(String(req.since));
    } catch (err) {
      throw errors.BadRequest('runtime', (err as Error).message);
    }
  }
  if (req.level !== undefined && !isLogLevel(req.level)) throw errors.BadRequest('runtime', `level must be one of trace, debug, info, warn, error, fatal, not "${String(req.level).slice(0, 32)}"`);
  if (req.traceId !== undefined && !TRACE_ID.test(String(req.traceId))) throw errors.BadRequest('runtime', 'traceId must be 32 lower-case hex digits (not all zero)');
  return { lines, since, follow: req.follow ?? false, signal, level: req.level, traceId: req.traceId };
}

const ROTATE = Symbol('rotate');
/** Lines waiting for the disk beyond this are dropped, oldest first, and counted. */
const MAX_QUEUED_BYTES = 8 * 1024 * 1024;
/** A follower that falls this far behind skips lines, oldest first, rather than growing without bound. */
const MAX_FOLLOW_BACKLOG = 10_000;
const MAX_FOLLOW_BACKLOG_BYTES = 4 * 1024 * 1024;
const CHUNK = 64 * 1024;

export class LogFile {
  /** the service whose log this is: the file's name */
  readonly service: string;
  private queue: (string | typeof ROTATE)[] = [];
  private queuedBytes = 0;
  /** lines dropped since the last note about them */
  private unreported = 0;
  private droppedTotal = 0;
  private flushing: Promise<void> | undefined;
  /** bytes in the current file, counting those still queued */
  private size: number;
  /** how many times the file was rotated since this object was made */
  private generation = 0;
  private readonly listeners = new Set<(entry: Entry) => void>();

  constructor(
    readonly path: string,
    private readonly maxBytes = 10 * 1024 * 1024,
    private readonly maxQueuedBytes = MAX_QUEUED_BYTES,
  ) {
    this.service = basename(path, '.log');
    this.size = existsSync(path) ? statSync(path).size : 0;
  }

  /** Lines dropped because the disk did not keep up, since this object was made. */
  get dropped(): number {
    return this.droppedTotal;
  }

  append(instance: string, stream: LogStream, line: string): void {
    const entry: Entry = { t: new Date().toISOString(), i: instance, s: stream, l: line };
    for (const listener of this.listeners) listener(entry);
    const text = JSON.stringify(entry) + '\n';
    this.makeRoom(Buffer.byteLength(text));
    if (this.unreported > 0) {
      const note = `${this.unreported} lines dropped: the disk did not keep up`;
      this.unreported = 0;
      this.enqueue(JSON.stringify({ ...entry, i: '', s: 'runtime', l: note }) + '\n');
    }
    this.enqueue(text);
  }

  /**
   * Drops the oldest lines still waiting for the disk when `bytes` more would not fit: down
   * to 3/4 of the bound at once, so that a flood drops in batches (one pass over the
   * queue) rather than one line at a time.
   */
  private makeRoom(bytes: number): void {
    if (this.queuedBytes + bytes <= this.maxQueuedBytes) return;
    const target = (this.maxQueuedBytes * 3) / 4 - bytes;
    // a line before the last pending rotation belongs to the previous file: the current
    // file's size does not count it
    const lastRotate = this.queue.lastIndexOf(ROTATE);
    const kept: (string | typeof ROTATE)[] = [];
    for (let i = 0; i < this.queue.length; i++) {
      const item = this.queue[i] as string | typeof ROTATE;
      if (item === ROTATE || this.queuedBytes <= target) {
        kept.push(item);
        continue;
      }
      const n = Buffer.byteLength(item);
      this.queuedBytes -= n;
      if (i > lastRotate) this.size -= n;
      this.unreported++;
      this.droppedTotal++;
    }
    this.queue = kept;
  }

  private enqueue(text: string): void {
    const bytes = Buffer.byteLength(text);
    if (this.size > 0 && this.size + bytes > this.maxBytes) {
      this.queue.push(ROTATE);
      this.generation++;
      this.size = 0;
    }
    this.queue.push(text);
    this.queuedBytes += bytes;
    this.size += bytes;
    this.flushing ??= this.drain().finally(() => (this.flushing = undefined));
  }

  private async drain(): Promise<void> {
    mkdirSync(dirname(this.path), { recursive: true, mode: 0o700 });
    while (this.queue.length > 0) {
      const rotateAt = this.queue.indexOf(ROTATE);
      const batch = this.queue.splice(0, rotateAt === -1 ? this.queue.length : rotateAt) as string[];
      if (batch.length > 0) {
        const text = batch.join('');
        try {
          await appendFile(this.path, text, { mode: 0o600 });
        } catch {
          // a full or read-only disk: the lines are lost, the service keeps running
        }
        this.queuedBytes -= Buffer.byteLength(text);
      }
      if (this.queue[0] === ROTATE) {
        this.queue.shift();
        await rename(this.path, `${this.path}.1`).catch(() => undefined);
      }
    }
  }

  /** Resolves once every line appended so far is in the file. */
  async flushed(): Promise<void> {
    while (this.flushing) await this.flushing;
  }

  /**
   * The last lines that pass the filter, oldest first, then (with `follow`) new lines as
   * they come until `signal` aborts. Lines appended while history is read are neither
   * lost nor repeated: the follower subscribes and the history's end is fixed in the
   * same tick.
   */
  read(options: ReadOptions): AsyncGenerator<LogLine> {
    return readLogs([this], options);
  }

  /** Calls `listener` with every line appended from now on; returns how to stop. */
  subscribe(listener: (entry: Entry) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Where the file ends now, counting lines still on their way to the disk. */
  mark(): End {
    return { generation: this.generation, size: this.size };
  }

  /** The last `lines` entries that pass the filter, up to `end`. */
  async history(end: End, options: HistoryOptions): Promise<Entry[]> {
    if (options.lines <= 0) return [];
    await this.flushed();
    // the history ends where the file was when the read began, even if it rotated since
    const rotations = this.generation - end.generation;
    if (rotations > 1) return [];
    const match = matcher(options);
    const newest = rotations === 0 ? this.path : `${this.path}.1`;
    const lines = await lastLines(newest, end.size, options.lines, options.since, match);
    if (rotations === 0 && !lines.stopped && lines.entries.length < options.lines && existsSync(`${this.path}.1`)) {
      const older = await lastLines(`${this.path}.1`, Infinity, options.lines - lines.entries.length, options.since, match);
      return [...older.entries, ...lines.entries];
    }
    return lines.entries;
  }
}

/**
 * The log files of a runtime, one per service and namespace: <dir>/<namespace>/<service>.log.
 * Reading without a service name reads every service of the namespace, merged by time;
 * following it also follows the services started after the read began.
 */
export class LogFiles {
  private readonly files = new Map<string, LogFile>();
  private readonly watchers = new Set<{ namespace: string; add: (file: LogFile) => void }>();

  constructor(
    readonly dir: string,
    private readonly maxBytes?: number,
    private readonly maxQueuedBytes?: number,
  ) {}

  /** Lines dropped by all the logs because the disk did not keep up (for metrics). */
  get dropped(): number {
    let n = 0;
    for (const f of this.files.values()) n += f.dropped;
    return n;
  }

  /** The log of a service (made on first use: the file itself when a line is written). */
  get(namespace: string, name: string): LogFile {
    const k = `${namespace}/${name}`;
    let file = this.files.get(k);
    if (!file) {
      file = new LogFile(join(this.dir, namespace, `${name}.log`), this.maxBytes, this.maxQueuedBytes);
      this.files.set(k, file);
      for (const w of this.watchers) if (w.namespace === namespace) w.add(file);
    }
    return file;
  }

  /** The services of a namespace that have a log: on disk, or open in this process. */
  names(namespace: string): string[] {
    const names = new Set<string>();
    for (const k of this.files.keys()) if (k.startsWith(`${namespace}/`)) names.add(k.slice(namespace.length + 1));
    try {
      for (const f of readdirSync(join(this.dir, namespace))) if (f.endsWith('.log')) names.add(f.slice(0, -4));
    } catch {
      // no log in this namespace yet
    }
    return [...names].sort();
  }

  /** Every service of the namespace, merged by time (see LogFile.read). */
  readNamespace(namespace: string, options: ReadOptions): AsyncGenerator<LogLine> {
    const files = this.names(namespace).map((n) => this.get(namespace, n));
    return readLogs(files, options, (add) => {
      const watcher = { namespace, add };
      this.watchers.add(watcher);
      return () => this.watchers.delete(watcher);
    });
  }

  async flushed(): Promise<void> {
    await Promise.all([...this.files.values()].map((f) => f.flushed()));
  }

  /** Deletes the logs of a namespace (the namespace purge): written out first, then the folder. */
  async drop(namespace: string): Promise<void> {
    const mine = [...this.files.entries()].filter(([k]) => k.startsWith(`${namespace}/`));
    await Promise.all(mine.map(([, f]) => f.flushed()));
    for (const [k] of mine) this.files.delete(k);
    await rm(join(this.dir, namespace), { recursive: true, force: true });
  }
}

/**
 * Reads the last lines of several logs merged by time, then follows them (see
 * LogFile.read). `watch`, when given, is told how to add a log that appears while
 * following. A follower that falls behind skips the oldest lines it has not sent and
 * says how many.
 */
export async function* readLogs(files: LogFile[], options: ReadOptions, watch?: (add: (file: LogFile) => void) => () => void): AsyncGenerator<LogLine> {
  const match = matcher(options);
  const backlog: { file: LogFile; entry: Entry; bytes: number }[] = [];
  let backlogBytes = 0;
  let skipped = 0;
  let wake: (() => void) | undefined;
  const stops: (() => void)[] = [];
  const follow = (file: LogFile) => {
    stops.push(
      file.subscribe((entry) => {
        const bytes = entry.l.length + 64;
        backlog.push({ file, entry, bytes });
        backlogBytes += bytes;
        while (backlog.length > MAX_FOLLOW_BACKLOG || backlogBytes > MAX_FOLLOW_BACKLOG_BYTES) {
          backlogBytes -= (backlog.shift() as { bytes: number }).bytes;
          skipped++;
        }
        wake?.();
      }),
    );
  };
  const onAbort = () => wake?.();
  if (options.follow) {
    for (const f of files) follow(f);
    if (watch) stops.push(watch(follow));
    options.signal?.addEventListener('abort', onAbort);
  }
  try {
    const ends = files.map((f) => f.mark());
    const histories = await Promise.all(files.map(async (f, i) => (await f.history(ends[i] as End, options)).map((entry) => ({ file: f, entry }))));
    // one file is in order already; several are merged by time (ISO times sort as text)
    let merged = histories.flat();
    if (histories.length > 1) {
      merged.sort((a, b) => (a.entry.t < b.entry.t ? -1 : a.entry.t > b.entry.t ? 1 : 0));
      merged = merged.slice(Math.max(0, merged.length - options.lines));
    }
    for (const { file, entry } of merged) yield match(entry, file.service) as LogLine;
    while (options.follow && !options.signal?.aborted) {
      const next = backlog.shift();
      if (!next) {
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
        continue;
      }
      backlogBytes -= next.bytes;
      if (skipped > 0) {
        yield { time: new Date().toISOString(), instance: '', stream: 'runtime', line: `${skipped} lines skipped: the reader did not keep up` };
        skipped = 0;
      }
      if (options.since !== undefined && Date.parse(next.entry.t) < options.since) continue;
      const line = match(next.entry, next.file.service);
      if (line) yield line;
    }
  } finally {
    for (const stop of stops) stop();
    options.signal?.removeEventListener('abort', onAbort);
  }
}

/**
 * The line an entry is shown as, with the level and trace id it carries, or undefined
 * when it does not pass the level and trace filters (`since` is checked by the readers,
 * which stop at the first older line).
 */
export function matcher(filter: LineFilter): (e: Entry, service?: string) => LogLine | undefined {
  const min = filter.level === undefined ? undefined : levelNumber(filter.level);
  return (e, service) => {
    const fields = lineFields(e.l);
    if (filter.traceId !== undefined && fields.traceId !== filter.traceId) return undefined;
    if (min !== undefined && levelNumber(effectiveLevel(fields, e.s)) < min) return undefined;
    const line: LogLine = { time: e.t, instance: e.i, stream: e.s, line: e.l };
    if (service !== undefined) line.service = service;
    if (fields.level) line.level = fields.level;
    if (fields.traceId) line.traceId = fields.traceId;
    return line;
  };
}

/**
 * Reads a log file backwards from `end` in 64 KiB chunks until `want` lines (at or
 * after `since`, passing `match`) are found: `micro logs -n 20` of a 10 MiB file reads
 * 64 KiB; a filter that few lines pass reads further, at most the file (10 MiB).
 * `stopped` is true when a line older than `since` was reached.
 */
async function lastLines(
  path: string,
  end: number,
  want: number,
  since: number | undefined,
  match: (e: Entry) => LogLine | undefined,
): Promise<{ entries: Entry[]; stopped: boolean }> {
  const entries: Entry[] = [];
  let handle;
  try {
    handle = await open(path, 'r');
  } catch {
    return { entries, stopped: false };
  }
  try {
    let pos = Math.min(end, (await handle.stat()).size);
    // bytes after pos not split into lines yet: the end of a line that starts before pos
    let carry = Buffer.alloc(0);
    while (pos > 0 && entries.length < want) {
      const size = Math.min(CHUNK, pos);
      pos -= size;
      const chunk = Buffer.alloc(size);
      await handle.read(chunk, 0, size, pos);
      const buf = Buffer.concat([chunk, carry]);
      let start = 0;
      if (pos > 0) {
        const nl = buf.indexOf(0x0a);
        if (nl === -1) {
          carry = buf;
          continue;
        }
        start = nl + 1;
      }
      carry = buf.subarray(0, start);
      const lines = buf.subarray(start).toString('utf8').split('\n');
      for (let i = lines.length - 1; i >= 0 && entries.length < want; i--) {
        const entry = parse(lines[i] as string);
        if (!entry) continue;
        if (since !== undefined && Date.parse(entry.t) < since) return { entries: entries.reverse(), stopped: true };
        if (match(entry)) entries.push(entry);
      }
    }
    return { entries: entries.reverse(), stopped: false };
  } finally {
    await handle.close();
  }
}

function parse(line: string): Entry | undefined {
  if (line.length === 0) return undefined;
  try {
    const e = JSON.parse(line) as Entry;
    return typeof e.t === 'string' && typeof e.l === 'string' ? e : undefined;
  } catch {
    return undefined; // a line cut by a crash mid-write
  }
}
