/**
 * What a service's log line says about itself, and the filters `micro logs` applies to
 * lines. Services log one JSON object per line (pino): `level` (a number, 10 trace …
 * 60 fatal), `time`, `service`, `namespace`, `instance`, `traceId` (inside a call), `msg`.
 * The runtime keeps lines as they were printed, cut at 16 KiB; a cut JSON line no longer
 * parses, so the fields are found by their keys in the text, not by JSON.parse, and a
 * line that is not JSON (console.log) has no level of its own.
 */

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

const NUMBERS: Record<LogLevel, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60 };

/** A W3C trace id: 32 lower-case hex digits, not all zero. */
export const TRACE_ID = /^(?!0{32})[0-9a-f]{32}$/;

export function isLogLevel(value: unknown): value is LogLevel {
  return typeof value === 'string' && (LOG_LEVELS as readonly string[]).includes(value);
}

export function levelNumber(level: LogLevel): number {
  return NUMBERS[level];
}

/** The name of a pino level number; custom levels in between take the name below them. */
export function levelName(n: number): LogLevel {
  let name: LogLevel = 'trace';
  for (const l of LOG_LEVELS) if (n >= NUMBERS[l]) name = l;
  return name;
}

// pino writes its own fields (level, then the bindings: service, namespace, instance,
// traceId) before the fields of a call, so the first occurrence is pino's. A key cannot
// appear unescaped inside a JSON string value, so these match keys only.
const LEVEL = /"level":(?:(\d{1,3})|"([a-z]{1,10})")/;
const TRACE = /"traceId":"([0-9a-f]{32})"/;

export interface LineFields {
  level?: LogLevel;
  traceId?: string;
}

/** The level and trace id of a log line, when it is (the start of) a JSON object that has them. */
export function lineFields(line: string): LineFields {
  if (!line.startsWith('{')) return {};
  const fields: LineFields = {};
  const level = LEVEL.exec(line);
  if (level) {
    if (level[1] !== undefined) fields.level = levelName(Number(level[1]));
    else if (isLogLevel(level[2])) fields.level = level[2];
  }
  const trace = TRACE.exec(line);
  if (trace) fields.traceId = trace[1] as string;
  return fields;
}

/** The longest `since` accepted: a duration of at most ~100 years back. */
const MAX_SINCE_MS = 100 * 365 * 86_400_000;
const UNITS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/**
 * `since` as epoch ms: an ISO time (2024-05-01T10:00:00Z) or a duration back from `now`
 * (30s, 10m, 2h, 1d). Throws a RangeError that says what is accepted; a duration beyond
 * ~100 years or a time outside what a Date holds is refused rather than overflowing.
 */
export function parseSince(value: string, now = Date.now()): number {
  const text = value.trim();
  if (text.length > 0 && text.length <= 64) {
    const rel = /^(\d{1,16}(?:\.\d{1,6})?)(ms|s|m|h|d)$/.exec(text);
    if (rel) {
      const ms = Number(rel[1]) * UNITS[rel[2] as keyof typeof UNITS];
      if (ms <= MAX_SINCE_MS) return now - ms;
      throw new RangeError(`since "${value}" goes back more than 100 years`);
    }
    // only strings that look like dates: Date.parse accepts odd things like "1"
    if (/^\d{4}-\d{2}-\d{2}/.test(text)) {
      const t = Date.parse(text);
      if (!Number.isNaN(t)) return t;
    }
  }
  throw new RangeError(`since must be an ISO time (2024-05-01T10:00:00Z) or a duration like 30s, 10m, 2h, 1d, not "${value.slice(0, 64)}"`);
}

/** Which lines `micro logs` shows: at or above a level, of one trace, at or after a time. */
export interface LineFilter {
  level?: LogLevel | undefined;
  traceId?: string | undefined;
  /** epoch ms */
  since?: number | undefined;
}

/**
 * The level of a line for filtering: its own when it is a JSON log line; else stderr
 * counts as `error`, the runtime's own notes (built, started, crashed) as `warn` so that
 * `--level warn` still says why a service restarted, and other stdout as `info`.
 */
export function effectiveLevel(fields: LineFields, stream: string): LogLevel {
  return fields.level ?? (stream === 'stderr' ? 'error' : stream === 'runtime' ? 'warn' : 'info');
}
