import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { errors } from '@micro/sdk';
import { MAX_LOCATION } from './definition.js';

/**
 * The system's tz database (/usr/share/zoneinfo, or $TZDIR): which zones there are, where
 * they are (zone1970.tab, zone.tab, iso3166.tab, read once) and the abbreviations and
 * standard offsets each zone uses now (the POSIX TZ string that ends its TZif file, read
 * once a zone). The times themselves come from Intl (ICU's copy of the same database), so
 * without the files the service still answers, with less: see README.md.
 *
 * What a caller sends is only ever a key of the maps built here: no file name is made of
 * it. The files read are the tables and the TZif file of a zone named by the tables or by
 * Intl, whose names are checked again (ZONE_NAME) before they are joined to the directory.
 */

/** Where a zone is, from zone1970.tab / zone.tab. */
export interface ZoneRow {
  /** the zone's country, ISO 3166 alpha-2 (zone.tab's, else the first of zone1970.tab's) */
  country: string;
  /** degrees, + north */
  latitude: number;
  /** degrees, + east */
  longitude: number;
}

/** A zone's rule for now, from the POSIX TZ string of its TZif file. */
export interface ZoneRule {
  std: { abbreviation: string; offset: number };
  dst?: { abbreviation: string; offset: number };
}

export interface ZoneDatabaseOptions {
  /** the tz database's directory; default $TZDIR, else /usr/share/zoneinfo */
  dir?: string;
  /** reads a file (default fs.readFile): the tests watch what is read */
  read?: (path: string) => Promise<Buffer>;
}

interface Tables {
  /** zone1970.tab and zone.tab were read */
  files: boolean;
  rows: Map<string, ZoneRow>;
  countries: Map<string, string>;
  /** lower-cased zone name (and alias Intl knows) → the zone's name as we answer it */
  names: Map<string, string>;
  /** a city as cityKey makes it → zone name */
  cities: Map<string, string>;
}

/** A zone name as the tz database writes them: what may be joined to its directory. */
const ZONE_NAME = /^[A-Za-z][A-Za-z0-9_+-]*(\/[A-Za-z0-9_+-]+)*$/;
/** What a location may hold: letters (accents too), digits, space, _ + - / . ' */
const LOCATION = /^[\p{L}\p{M}\d _+\-/.']+$/u;
/** TZif files are a few KiB; anything much larger is not one */
const MAX_TZIF = 256 * 1024;

/** `St. John's` and `st_johns`, `São Paulo` and `Sao_Paulo` alike. */
export function cityKey(text: string): string {
  return text.normalize('NFD').replace(/\p{M}/gu, '').toLowerCase().replace(/['.]/g, '').replace(/[\s_-]+/g, ' ').trim();
}

/** ISO 6709 ±DDMM[SS]±DDDMM[SS] → [latitude, longitude] in degrees, 4 decimals. */
export function iso6709(text: string): [number, number] | undefined {
  const m = /^([+-])(\d{2})(\d{2})(\d{2})?([+-])(\d{3})(\d{2})(\d{2})?$/.exec(text);
  if (!m) return undefined;
  const deg = (sign: string, d: string, mm: string, ss = '0') => Math.round((sign === '-' ? -1 : 1) * (Number(d) + Number(mm) / 60 + Number(ss) / 3600) * 10_000) / 10_000;
  return [deg(m[1] as string, m[2] as string, m[3] as string, m[4]), deg(m[5] as string, m[6] as string, m[7] as string, m[8])];
}

/** The lines of a .tab file that are not comments, split at tabs. */
function tabRows(text: string): string[][] {
  return text.split('\n').filter((l) => l !== '' && !l.startsWith('#')).map((l) => l.split('\t'));
}

/**
 * `EST5EDT,M3.2.0,M11.1.0` → EST at -300 minutes, EDT at -240. POSIX offsets count hours
 * west of Greenwich, so their sign is turned; a DST without an offset is an hour ahead.
 */
export function posixRule(tz: string): ZoneRule | undefined {
  const name = '(?:([A-Za-z]{3,})|<([A-Za-z0-9+-]{1,})>)';
  const offset = '([+-]?\\d{1,3}(?::\\d{1,2}){0,2})';
  const m = new RegExp(`^${name}${offset}(?:${name}${offset}?)?(?:,.*)?$`).exec(tz);
  if (!m) return undefined;
  const minutes = (o: string) => {
    const [h = '0', mm = '0', ss = '0'] = o.replace(/^[+-]/, '').split(':');
    const west = Number(h) * 60 + Number(mm) + Number(ss) / 60;
    return o.startsWith('-') ? west : -west || 0; // `|| 0`: no -0 for Greenwich
  };
  const std = { abbreviation: (m[1] ?? m[2]) as string, offset: minutes(m[3] as string) };
  const dstName = m[4] ?? m[5];
  if (dstName === undefined) return { std };
  return { std, dst: { abbreviation: dstName, offset: m[6] === undefined ? std.offset + 60 : minutes(m[6]) } };
}

/** The POSIX TZ string a TZif file (version 2 or later) ends with, between its last two newlines. */
export function tzifFooter(bytes: Buffer): string | undefined {
  if (bytes.length < 45 || bytes.subarray(0, 4).toString('latin1') !== 'TZif' || bytes[4] === 0 || bytes[bytes.length - 1] !== 0x0a) return undefined;
  const start = bytes.lastIndexOf(0x0a, bytes.length - 2);
  if (start < 44) return undefined;
  return bytes.subarray(start + 1, bytes.length - 1).toString('latin1');
}

/** The name Intl (ICU) gives a zone, or undefined when it knows none of that name. */
export function intlZone(name: string): string | undefined {
  try {
    return new Intl.DateTimeFormat('en-US', { timeZone: name }).resolvedOptions().timeZone;
  } catch {
    return undefined;
  }
}

export class ZoneDatabase {
  readonly dir: string;
  private readonly read: (path: string) => Promise<Buffer>;
  private tables?: Promise<Tables>;
  private readonly rules = new Map<string, Promise<ZoneRule | undefined>>();

  constructor(options: ZoneDatabaseOptions = {}) {
    this.dir = options.dir ?? (process.env.TZDIR || '/usr/share/zoneinfo');
    this.read = options.read ?? ((path) => readFile(path));
  }

  /**
   * The zone of `location` (trimmed; empty: UTC): a zone name in any case, an alias Intl
   * knows (US/Pacific), or a city, the last part of a zone's name (london, new york, São
   * Paulo). A 400 for what cannot be a place, a 404 for a place of no zone.
   */
  async resolve(location: string | undefined): Promise<string> {
    const text = (location ?? '').trim();
    if (text === '') return 'UTC';
    const shown = JSON.stringify(text.slice(0, MAX_LOCATION));
    if (text.length > MAX_LOCATION) throw errors.BadRequest('time', `location: at most ${MAX_LOCATION} characters`);
    if (!LOCATION.test(text) || text.split('/').some((part) => part === '' || part === '.' || part === '..')) {
      throw errors.BadRequest('time', `location: ${shown} is not a zone name or city (letters, digits, space and _ + - / . ' only)`);
    }
    const t = await this.load();
    const named = t.names.get(text.toLowerCase());
    if (named) return named;
    const alias = ZONE_NAME.test(text) ? intlZone(text) : undefined;
    if (alias) return t.names.get(alias.toLowerCase()) ?? alias;
    const city = t.cities.get(cityKey(text));
    if (city) return city;
    throw errors.NotFound('time', `location: no time zone or city ${shown} in the tz database: give a zone name such as Europe/London or a city such as London`);
  }

  /** Where `zone` is, when the tables say (not for UTC, Etc/… or without the files). */
  async where(zone: string): Promise<(ZoneRow & { countryName: string }) | undefined> {
    const t = await this.load();
    const row = t.rows.get(zone);
    return row && { ...row, countryName: t.countries.get(row.country) ?? row.country };
  }

  /** Whether the tables were read (false: the service answers from Intl alone). */
  async hasFiles(): Promise<boolean> {
    return (await this.load()).files;
  }

  /** The abbreviations and offsets `zone` uses now, from its TZif file; undefined without one. */
  rule(zone: string): Promise<ZoneRule | undefined> {
    let rule = this.rules.get(zone);
    if (!rule) {
      rule = this.readRule(zone);
      this.rules.set(zone, rule);
    }
    return rule;
  }

  private async readRule(zone: string): Promise<ZoneRule | undefined> {
    // only names the tables or Intl gave reach here; checked again before they name a file
    if (!ZONE_NAME.test(zone)) return undefined;
    const bytes = await this.read(join(this.dir, zone)).catch(() => undefined);
    if (!bytes || bytes.length > MAX_TZIF) return undefined;
    const footer = tzifFooter(bytes);
    return footer === undefined ? undefined : posixRule(footer);
  }

  private load(): Promise<Tables> {
    this.tables ??= this.readTables();
    return this.tables;
  }

  private async readTables(): Promise<Tables> {
    const text = (file: string) => this.read(join(this.dir, file)).then((b) => b.toString('utf8'), () => undefined);
    const [zone1970, zone, iso3166] = await Promise.all([text('zone1970.tab'), text('zone.tab'), text('iso3166.tab')]);
    const rows = new Map<string, ZoneRow>();
    // zone.tab first: its country is the zone's own (zone1970.tab lists the countries a zone covers)
    for (const [cells, many] of [[tabRows(zone ?? ''), false], [tabRows(zone1970 ?? ''), true]] as const) {
      for (const [codes = '', coordinates = '', name = ''] of cells) {
        const at = iso6709(coordinates);
        if (!ZONE_NAME.test(name) || !at || rows.has(name)) continue;
        rows.set(name, { country: many ? (codes.split(',')[0] as string) : codes, latitude: at[0], longitude: at[1] });
      }
    }
    const countries = new Map<string, string>();
    for (const [code, name] of tabRows(iso3166 ?? '')) if (code && name) countries.set(code, name);
    return { files: rows.size > 0, rows, countries, ...indexNames([...rows.keys()]) };
  }
}

/**
 * The names and cities a location is looked up by: the tables' zones first (their names are
 * the tz database's current ones, Asia/Kolkata where ICU says Asia/Calcutta), then every
 * zone Intl knows.
 */
function indexNames(tableZones: string[]): Pick<Tables, 'names' | 'cities'> {
  const names = new Map<string, string>([['utc', 'UTC']]);
  const cities = new Map<string, string>();
  const add = (name: string) => {
    const zone = names.get(name.toLowerCase()) ?? name;
    names.set(name.toLowerCase(), zone);
    const city = cityKey(name.split('/').pop() as string);
    if (name.includes('/') && !name.startsWith('Etc/') && !cities.has(city)) cities.set(city, zone);
  };
  for (const name of tableZones) {
    add(name);
    // ICU's name of the same zone answers with the tables' name
    const icu = intlZone(name);
    if (icu && icu !== name && !names.has(icu.toLowerCase())) names.set(icu.toLowerCase(), name);
  }
  for (const name of Intl.supportedValuesOf('timeZone')) if (ZONE_NAME.test(name)) add(name);
  return { names, cities };
}
