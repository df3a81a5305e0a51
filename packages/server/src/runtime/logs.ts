import { existsSync, mkdirSync, statSync } from 'node:fs';
import { appendFile, open, rename } from 'node:fs/promises';
import { dirname } from 'node:path';

/**
 * The log of a service: one JSON object per line, `{t, i, s, l}` (ISO time, instance id,
 * stream, line), in <home>/logs/<namespace>/<service>.log. Every instance of the service
 * and the runtime itself (builds, starts, crashes, as stream `runtime`) write to it
 * through one LogFile, so lines are never interleaved mid-line. At `maxBytes` the file
 * is rotated to `<service>.log.1` (one previous file is kept).
 */

export type LogStream = 'stdout' | 'stderr' | 'runtime';

interface Entry {
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
}

export interface HistoryOptions {
  /** how many of the last lines */
  lines: number;
  /** only lines at or after this time (epoch ms) */
  since?: number;
}

const ROTATE = Symbol('rotate');
/** Lines waiting for the disk beyond this are dropped (and counted) rather than held. */
const MAX_QUEUED_BYTES = 8 * 1024 * 1024;
/** A follower that falls this far behind skips lines rather than growing without bound. */
const MAX_FOLLOW_BACKLOG = 10_000;
const CHUNK = 64 * 1024;

export class LogFile {
  private readonly queue: (string | typeof ROTATE)[] = [];
  private queuedBytes = 0;
  private dropped = 0;
  private flushing: Promise<void> | undefined;
  /** bytes in the current file, counting those still queued */
  private size: number;
  /** how many times the file was rotated since this object was made */
  private generation = 0;
  private readonly listeners = new Set<(entry: Entry) => void>();

  constructor(
    readonly path: string,
    private readonly maxBytes = 10 * 1024 * 1024,
  ) {
    this.size = existsSync(path) ? statSync(path).size : 0;
  }

  append(instance: string, stream: LogStream, line: string): void {
    const entry: Entry = { t: new Date().toISOString(), i: instance, s: stream, l: line };
    for (const listener of this.listeners) listener(entry);
    if (this.queuedBytes > MAX_QUEUED_BYTES) {
      this.dropped++;
      return;
    }
    if (this.dropped > 0) {
      const note = `${this.dropped} lines dropped: the disk did not keep up`;
      this.dropped = 0;
      this.enqueue(JSON.stringify({ ...entry, i: '', s: 'runtime', l: note }) + '\n');
    }
    this.enqueue(JSON.stringify(entry) + '\n');
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
   * The last lines, oldest first, then (with `follow`) new lines as they come until
   * `signal` aborts. Lines appended while history is read are neither lost nor repeated:
   * the follower subscribes and the history's end is fixed in the same tick.
   */
  async *read(options: HistoryOptions & { follow?: boolean; signal?: AbortSignal }): AsyncGenerator<LogLine> {
    const backlog: Entry[] = [];
    let skipped = 0;
    let wake: (() => void) | undefined;
    const listener = (entry: Entry) => {
      if (backlog.length >= MAX_FOLLOW_BACKLOG) {
        backlog.shift();
        skipped++;
      }
      backlog.push(entry);
      wake?.();
    };
    const onAbort = () => wake?.();
    if (options.follow) {
      this.listeners.add(listener);
      options.signal?.addEventListener('abort', onAbort);
    }
    try {
      const end = { generation: this.generation, size: this.size };
      for (const entry of await this.history(end, options)) yield toLine(entry);
      while (options.follow && !options.signal?.aborted) {
        if (backlog.length === 0) {
          await new Promise<void>((resolve) => (wake = resolve));
          wake = undefined;
          continue;
        }
        if (skipped > 0) {
          yield { time: new Date().toISOString(), instance: '', stream: 'runtime', line: `${skipped} lines skipped: the reader did not keep up` };
          skipped = 0;
        }
        const entry = backlog.shift() as Entry;
        if (options.since === undefined || Date.parse(entry.t) >= options.since) yield toLine(entry);
      }
    } finally {
      this.listeners.delete(listener);
      options.signal?.removeEventListener('abort', onAbort);
    }
  }

  private async history(end: { generation: number; size: number }, options: HistoryOptions): Promise<Entry[]> {
    if (options.lines <= 0) return [];
    await this.flushed();
    // the history ends where the file was when the read began, even if it rotated since
    const rotations = this.generation - end.generation;
    if (rotations > 1) return [];
    const newest = rotations === 0 ? this.path : `${this.path}.1`;
    const lines = await lastLines(newest, end.size, options.lines, options.since);
    if (rotations === 0 && !lines.stopped && lines.entries.length < options.lines && existsSync(`${this.path}.1`)) {
      const older = await lastLines(`${this.path}.1`, Infinity, options.lines - lines.entries.length, options.since);
      return [...older.entries, ...lines.entries];
    }
    return lines.entries;
  }
}

function toLine(e: Entry): LogLine {
  return { time: e.t, instance: e.i, stream: e.s, line: e.l };
}

/**
 * Reads a log file backwards from `end` in 64 KiB chunks until `want` lines (at or
 * after `since`) are found: `micro logs -n 20` of a 10 MiB file reads 64 KiB.
 * `stopped` is true when a line older than `since` was reached.
 */
async function lastLines(path: string, end: number, want: number, since: number | undefined): Promise<{ entries: Entry[]; stopped: boolean }> {
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
        entries.push(entry);
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
