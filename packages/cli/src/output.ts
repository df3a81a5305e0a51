/**
 * How the CLI prints: tables for people, JSON for programs (`--output json`), and the
 * small formatters both use. Everything goes through `Printer` so that commands can be
 * tested without a terminal and so that a closed pipe (`micro services | head -1`)
 * ends the command quietly instead of crashing it.
 */

export type OutputFormat = 'text' | 'json';

export const OUTPUT_FORMATS: readonly OutputFormat[] = ['text', 'json'];

/** Parses the value of `--output`, naming the flag when it is wrong. */
export function parseOutputFormat(value: string | undefined): OutputFormat {
  if (value === undefined || value === 'text' || value === 'table') return 'text';
  if (value === 'json') return 'json';
  throw new UsageError(`--output must be json or text, not "${value}"`);
}

/** A failure with a message that already says what to do next; printed as is. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

/** A mistake in how a command was called (a flag's value, a missing argument). */
export class UsageError extends CliError {
  constructor(message: string) {
    super(message, 1);
    this.name = 'UsageError';
  }
}

export interface Writer {
  write(chunk: string): unknown;
}

/** Where a command writes: stdout for data, stderr for progress and messages. */
export class Printer {
  constructor(
    readonly format: OutputFormat = 'text',
    private readonly out: Writer = process.stdout,
    private readonly err: Writer = process.stderr,
  ) {}

  get json(): boolean {
    return this.format === 'json';
  }

  /** A line of data on stdout. */
  line(text = ''): void {
    this.out.write(`${text}\n`);
  }

  /** A value: one compact JSON line in json mode, pretty JSON for people. */
  value(value: unknown): void {
    this.out.write(`${this.json ? JSON.stringify(value) : JSON.stringify(value, null, 2)}\n`);
  }

  /** Data that is a table for people and a JSON document for programs. */
  table(headers: readonly string[], rows: readonly (readonly string[])[], data: unknown): void {
    if (this.json) this.out.write(`${JSON.stringify(data)}\n`);
    else this.out.write(formatTable(headers, rows));
  }

  /** A message for people (progress, confirmations); stays off stdout in json mode. */
  info(text: string): void {
    (this.json ? this.err : this.out).write(`${text}\n`);
  }

  /** Always stderr. */
  warn(text: string): void {
    this.err.write(`${text}\n`);
  }
}

/**
 * Left-aligned columns separated by two spaces, with no trailing blanks. Cells are
 * single-line: line breaks become spaces and control characters are dropped, so that a
 * service's error message cannot break the layout or send terminal escapes.
 */
export function formatTable(headers: readonly string[], rows: readonly (readonly string[])[], maxCell = 60): string {
  const clean = (s: string) => truncate(sanitize(s), maxCell);
  const all = [headers.map((h) => sanitize(h)), ...rows.map((r) => headers.map((_, i) => clean(r[i] ?? '')))];
  const widths = headers.map((_, i) => Math.max(...all.map((r) => width(r[i] ?? ''))));
  return all
    .map((r) =>
      r
        .map((cell, i) => (i === r.length - 1 ? cell : cell + ' '.repeat((widths[i] ?? 0) - width(cell))))
        .join('  ')
        .trimEnd(),
    )
    .join('\n')
    .concat('\n');
}

/** One line of printable text: whitespace runs become one space, control characters go. */
export function sanitize(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/\s+/g, ' ').replace(/[\u0000-\u001f\u007f-\u009f]/g, '').trim();
}

export function truncate(text: string, max: number): string {
  if (max <= 0 || [...text].length <= max) return text;
  return `${[...text].slice(0, Math.max(1, max - 1)).join('')}…`;
}

/** Display width in code points: good enough for names, versions and messages. */
function width(text: string): number {
  return [...text].length;
}

/** A duration for people: 45s, 5m3s, 2h10m, 3d4h. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '-';
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${s % 60}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h${m % 60}m`;
  return `${Math.floor(h / 24)}d${h % 24}h`;
}

/** Parses `--since`: an ISO time, or a duration back from now (30s, 10m, 2h, 1d). */
export function parseSince(value: string, now = Date.now()): string {
  const rel = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(value.trim());
  if (rel) {
    const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[rel[2] as 'ms' | 's' | 'm' | 'h' | 'd'];
    return new Date(now - Number(rel[1]) * unit).toISOString();
  }
  // only strings that look like dates: Date.parse accepts odd things like "1"
  if (/^\d{4}-\d{2}-\d{2}/.test(value)) {
    const t = Date.parse(value);
    if (!Number.isNaN(t)) return new Date(t).toISOString();
  }
  throw new UsageError(`--since must be an ISO time (2024-05-01T10:00:00Z) or a duration like 30s, 10m, 2h, 1d, not "${value}"`);
}
