import type { ZoneRule } from './zones.js';

/** What a zone's clock shows at one instant. */
export interface LocalClock {
  /** YYYY-MM-DD */
  date: string;
  /** HH:MM:SS */
  time: string;
  /** minutes east of UTC */
  offset: number;
  abbreviation: string;
  /** daylight saving time (as the tz database counts it) */
  dst: boolean;
  /** RFC 3339 with the zone's offset (Z at UTC+0) */
  timestamp: string;
}

const formats = new Map<string, Intl.DateTimeFormat>();

/** One formatter a zone, made once: the calendar fields and the offset (`GMT+05:30`). */
function format(zone: string): Intl.DateTimeFormat {
  let f = formats.get(zone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', { timeZone: zone, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit', timeZoneName: 'longOffset' });
    formats.set(zone, f);
  }
  return f;
}

/** `GMT+05:30` → 330, `GMT` → 0 */
function offsetMinutes(text: string): number {
  const m = /^GMT(?:([+-])(\d{2}):?(\d{2})?)?$/.exec(text);
  if (!m || !m[1]) return 0;
  return (m[1] === '-' ? -1 : 1) * (Number(m[2]) * 60 + Number(m[3] ?? 0));
}

function fields(zone: string, ms: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of format(zone).formatToParts(ms)) out[p.type] = p.value;
  return out;
}

/** `+05:30`, `-03:00`, `Z` */
function rfc3339Offset(minutes: number): string {
  if (minutes === 0) return 'Z';
  const abs = Math.abs(minutes);
  return `${minutes < 0 ? '-' : '+'}${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`;
}

/**
 * The clock of `zone` at `ms`: calendar and offset from Intl; the abbreviation and whether
 * it is daylight saving time from the zone's rule (its TZif file) when the offset is one the
 * rule names, else from Intl (`GMT+1` where ICU has no abbreviation for English) and from
 * the year's two offsets (DST is the later one, in January or in July).
 */
export function localClock(zone: string, ms: number, rule: ZoneRule | undefined): LocalClock {
  const f = fields(zone, ms);
  const offset = offsetMinutes(f.timeZoneName ?? '');
  const date = `${f.year}-${f.month}-${f.day}`;
  const time = `${f.hour}:${f.minute}:${f.second}`;
  const millis = String(((ms % 1000) + 1000) % 1000).padStart(3, '0');
  const timestamp = `${date}T${time}.${millis}${rfc3339Offset(offset)}`;
  const known = rule?.std.offset === offset ? { abbreviation: rule.std.abbreviation, dst: false } : rule?.dst?.offset === offset ? { abbreviation: rule.dst.abbreviation, dst: true } : undefined;
  return { date, time, offset, timestamp, ...(known ?? { abbreviation: intlAbbreviation(zone, ms), dst: laterOffset(zone, ms, offset) }) };
}

function intlAbbreviation(zone: string, ms: number): string {
  const part = new Intl.DateTimeFormat('en-US', { timeZone: zone, timeZoneName: 'short' }).formatToParts(ms).find((p) => p.type === 'timeZoneName');
  return part?.value ?? 'UTC';
}

/** Whether `offset` is the larger of the zone's offsets on 1 January and 1 July of that year. */
function laterOffset(zone: string, ms: number, offset: number): boolean {
  const year = new Date(ms).getUTCFullYear();
  const jan = offsetMinutes(fields(zone, Date.UTC(year, 0, 1)).timeZoneName ?? '');
  const jul = offsetMinutes(fields(zone, Date.UTC(year, 6, 1)).timeZoneName ?? '');
  return jan !== jul && offset === Math.max(jan, jul);
}
