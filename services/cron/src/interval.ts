import { Cron } from 'croner';
import { errors } from '@micro/sdk';

/**
 * A job's `interval`, parsed once: a cron expression (5 fields, or 6 with a single
 * second first; the nicknames @hourly, @daily, @weekly, @monthly, @yearly; UTC) read by
 * croner, or `@every <duration>` (Go's form, as robfig/cron that M3O's Go services used:
 * `@every 90s`, `@every 1h30m`), whose ticks are the multiples of the duration since the
 * Unix epoch, so that every node computes the same ticks without sharing a start.
 *
 * Ticks are at least a minute apart (MIN_GAP): a job is an outside call on the
 * platform's account, and a job firing every second would be a flood, not a schedule.
 */
export interface Interval {
  /** the first tick strictly after `after` (epoch ms); undefined when it never fires again */
  next(after: number): number | undefined;
}

/** The least time between two ticks of one job. */
export const MIN_GAP = 60_000;
/** `@every` at most a year: a longer one is a date, not an interval. */
const MAX_EVERY = 366 * 24 * 3_600_000;
const MAX_LENGTH = 100;

const UNITS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };
const DURATION = /^(?:\d+(?:\.\d+)?(?:ms|s|m|h))+$/;

function bad(detail: string) {
  return errors.BadRequest('cron', `interval: ${detail}`);
}

/** Go's time.ParseDuration for what @every takes (h, m, s, ms); NaN when it is not one. */
export function parseDuration(text: string): number {
  if (!DURATION.test(text)) return NaN;
  let ms = 0;
  for (const [, value, unit] of text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)) ms += Number(value) * (UNITS[unit as string] as number);
  return ms;
}

function every(text: string): Interval {
  const ms = parseDuration(text);
  if (Number.isNaN(ms)) throw bad(`"@every ${text.slice(0, 40)}" is not a duration: write it as Go does, e.g. @every 5m, @every 1h30m`);
  if (ms < MIN_GAP) throw bad(`@every ${text} fires more often than once a minute, the most a job may`);
  if (ms > MAX_EVERY) throw bad(`@every ${text} is longer than 366 days; use a cron expression for a date`);
  const step = Math.round(ms);
  return { next: (after) => (Math.floor(after / step) + 1) * step };
}

function expression(text: string): Interval {
  const fields = text.split(/\s+/);
  // a sixth field is croner's seconds: one second of the minute is a schedule, several are a flood
  if (fields.length === 6 && !/^\d{1,2}$/.test(fields[0] as string)) throw bad(`"${text}" fires more often than once a minute, the most a job may (a seconds field must be one second, e.g. "30 * * * * *")`);
  let cron: Cron;
  try {
    cron = new Cron(text, { paused: true, timezone: 'UTC', mode: '5-or-6-parts' });
  } catch (err) {
    throw bad(`"${text}" is not a cron expression (${(err as Error).message.replace(/^CronPattern: /, '')}); e.g. "*/5 * * * *", "0 9 * * 1-5", "@hourly" or "@every 10m"`);
  }
  const next = (after: number): number | undefined => cron.nextRun(new Date(after))?.getTime() ?? undefined;
  if (next(Date.now()) === undefined) throw bad(`"${text}" never fires (no such date comes again, e.g. February 30)`);
  return { next };
}

/** The interval of `text`, or a 400 saying what is wrong with it. */
export function parseInterval(text: string): Interval {
  const trimmed = text.trim();
  if (trimmed === '') throw errors.BadRequest('cron', 'Missing interval');
  if (trimmed.length > MAX_LENGTH) throw bad(`at most ${MAX_LENGTH} characters`);
  if (/^@every\s/i.test(trimmed)) return every(trimmed.slice(6).trim());
  return expression(trimmed);
}
