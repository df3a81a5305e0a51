import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { timeHandlers } from './handlers.js';
import { cityKey, iso6709, posixRule, tzifFooter, ZoneDatabase } from './zones.js';
import type { Context } from '@micro/sdk';

const DIR = '/usr/share/zoneinfo';
const haveFiles = existsSync(join(DIR, 'zone1970.tab')) && existsSync(join(DIR, 'Europe/London'));
const ctx = { tenant: 'tenant-a' } as Context;

async function rejects(p: Promise<unknown>, code: number, detail: RegExp) {
  await assert.rejects(p, (err: { code?: number; message: string }) => {
    assert.equal(err.code, code, err.message);
    assert.match(err.message, detail);
    return true;
  });
}

test('POSIX TZ strings, ISO 6709 coordinates, TZif footers, city keys', () => {
  assert.deepEqual(posixRule('GMT0BST,M3.5.0/1,M10.5.0'), { std: { abbreviation: 'GMT', offset: 0 }, dst: { abbreviation: 'BST', offset: 60 } });
  assert.deepEqual(posixRule('EST5EDT,M3.2.0,M11.1.0'), { std: { abbreviation: 'EST', offset: -300 }, dst: { abbreviation: 'EDT', offset: -240 } });
  assert.deepEqual(posixRule('IST-5:30'), { std: { abbreviation: 'IST', offset: 330 } });
  assert.deepEqual(posixRule('<+0545>-5:45'), { std: { abbreviation: '+0545', offset: 345 } });
  assert.deepEqual(posixRule('<-03>3'), { std: { abbreviation: '-03', offset: -180 } });
  assert.deepEqual(posixRule('<+1030>-10:30<+11>-11,M10.1.0,M4.1.0'), { std: { abbreviation: '+1030', offset: 630 }, dst: { abbreviation: '+11', offset: 660 } });
  assert.deepEqual(posixRule('IST-1GMT0,M10.5.0,M3.5.0/1'), { std: { abbreviation: 'IST', offset: 60 }, dst: { abbreviation: 'GMT', offset: 0 } });
  for (const bad of ['', 'X', 'root:x:0:0', 'GMT', '<>0']) assert.equal(posixRule(bad), undefined, bad);
  assert.deepEqual(iso6709('+513030-0000731'), [51.5083, -0.1253]);
  assert.deepEqual(iso6709('-3436-05827'), [-34.6, -58.45]);
  assert.equal(iso6709('51.5,-0.12'), undefined);
  assert.equal(tzifFooter(Buffer.from('root:x:0:0:root:/root:/bin/bash\n'.repeat(3))), undefined);
  assert.equal(tzifFooter(Buffer.alloc(100)), undefined);
  if (haveFiles) assert.equal(tzifFooter(readFileSync(join(DIR, 'Europe/London'))), 'GMT0BST,M3.5.0/1,M10.5.0');
  assert.equal(cityKey("St. John's"), cityKey('St_Johns'));
  assert.equal(cityKey('São Paulo'), cityKey('Sao_Paulo'));
  assert.equal(cityKey('port-au-prince'), cityKey('Port-au-Prince'));
});

test('a location is a zone name in any case, an alias, or a city; anything else a 400 or 404', { skip: !haveFiles && 'no tz database in /usr/share/zoneinfo' }, async () => {
  const zones = new ZoneDatabase({ dir: DIR });
  const cases: [string | undefined, string][] = [
    [undefined, 'UTC'], ['', 'UTC'], ['  ', 'UTC'], ['utc', 'UTC'],
    ['Europe/London', 'Europe/London'], ['europe/LONDON', 'Europe/London'], [' london ', 'Europe/London'],
    ['New York', 'America/New_York'], ['new_york', 'America/New_York'], ['Buenos Aires', 'America/Argentina/Buenos_Aires'],
    ['São Paulo', 'America/Sao_Paulo'], ["St. John's", 'America/St_Johns'],
    ['US/Pacific', 'America/Los_Angeles'], ['Asia/Calcutta', 'Asia/Kolkata'], ['calcutta', 'Asia/Kolkata'], ['Kolkata', 'Asia/Kolkata'],
    ['Etc/GMT+5', 'Etc/GMT+5'],
  ];
  for (const [location, zone] of cases) assert.equal(await zones.resolve(location), zone, String(location));
  await rejects(zones.resolve('Atlantis'), 404, /no time zone or city "Atlantis" in the tz database: give a zone name such as Europe\/London/);
  await rejects(zones.resolve('Europe/Atlantis'), 404, /no time zone or city/);
  await rejects(zones.resolve('zone1970.tab'), 404, /no time zone or city/);
  await rejects(zones.resolve('x'.repeat(65)), 400, /location: at most 64 characters/);
  for (const hostile of ['../../etc/passwd', 'Europe/../../../etc/passwd', '/etc/passwd', 'Europe//London', '..', '.', 'London\u0000', 'a\\b', '$(id)', 'Europe/London;rm', '%2e%2e/etc']) {
    await rejects(zones.resolve(hostile), 400, /location: .* is not a zone name or city/);
  }
});

test('the files read are the tables and zones\' TZif files, never one a location names', { skip: !haveFiles && 'no tz database' }, async () => {
  const reads: string[] = [];
  const handlers = timeHandlers({ dir: DIR, read: (path) => (reads.push(path), readFile(path)) });
  const hostile = ['../../etc/passwd', '../../../../../../etc/shadow', 'Europe/../../etc/passwd', 'etc/passwd', 'passwd', 'zone.tab', 'iso3166.tab', 'posixrules', 'tzdata.zi', 'leapseconds', 'SECURITY', '/proc/self/environ', 'right/UTC', 'Europe/London/..', 'Europe/London/../../../etc/hosts'];
  for (const location of hostile) {
    await assert.rejects(async () => handlers.Zone({ location }, ctx), (err: { code?: number }) => err.code === 400 || err.code === 404);
  }
  await handlers.Zone({ location: 'london' }, ctx);
  await handlers.Now({ location: 'Tokyo' }, ctx);
  assert.deepEqual(reads.sort(), ['Asia/Tokyo', 'Europe/London', 'iso3166.tab', 'zone.tab', 'zone1970.tab'].map((f) => join(DIR, f)));
});

test('Now and Zone at fixed instants: abbreviations, offsets, DST from the TZif file', { skip: !haveFiles && 'no tz database' }, async () => {
  let clock = Date.UTC(2026, 6, 1, 12, 0, 0, 250);
  const handlers = timeHandlers({ dir: DIR, now: () => clock });
  assert.deepEqual(await handlers.Now({ location: 'london' }, ctx), { localtime: '13:00:00', location: 'Europe/London', timestamp: '2026-07-01T13:00:00.250+01:00', timezone: 'BST', unix: String(Math.floor(clock / 1000)) });
  assert.deepEqual(await handlers.Now({}, ctx), { localtime: '12:00:00', location: 'UTC', timestamp: '2026-07-01T12:00:00.250Z', timezone: 'UTC', unix: String(Math.floor(clock / 1000)) });
  assert.deepEqual(await handlers.Zone({ location: 'Europe/London' }, ctx), {
    abbreviation: 'BST', country: 'Britain (UK)', dst: true, latitude: 51.5083, localtime: '2026-07-01 13:00', location: 'London', longitude: -0.1253, offset: 1, region: 'Europe', timezone: 'Europe/London',
  });
  const zone = async (location: string) => {
    const z = await handlers.Zone({ location }, ctx);
    return [z.timezone, z.abbreviation, z.offset, z.dst];
  };
  assert.deepEqual(await zone('kolkata'), ['Asia/Kolkata', 'IST', 5.5, false]);
  assert.deepEqual(await zone('Kathmandu'), ['Asia/Kathmandu', '+0545', 5.75, false]);
  assert.deepEqual(await zone("st john's"), ['America/St_Johns', 'NDT', -2.5, true]);
  assert.deepEqual(await zone('new york'), ['America/New_York', 'EDT', -4, true]);
  assert.deepEqual(await zone('Lord Howe'), ['Australia/Lord_Howe', '+1030', 10.5, false]);
  assert.deepEqual(await zone('UTC'), ['UTC', 'UTC', 0, false]);
  const ny = await handlers.Zone({ location: 'new york' }, ctx);
  assert.deepEqual([ny.country, ny.region, ny.location, ny.localtime], ['United States', 'America', 'New York', '2026-07-01 08:00']);
  clock = Date.UTC(2026, 0, 15, 23, 30);
  assert.deepEqual(await zone('London'), ['Europe/London', 'GMT', 0, false]);
  assert.deepEqual(await zone('New_York'), ['America/New_York', 'EST', -5, false]);
  assert.deepEqual(await zone('Lord_Howe'), ['Australia/Lord_Howe', '+11', 11, true]);
  // the tz database counts Ireland's winter time as its daylight saving time (a negative one)
  assert.deepEqual(await zone('Dublin'), ['Europe/Dublin', 'GMT', 0, true]);
  assert.equal((await handlers.Now({ location: 'tokyo' }, ctx)).timestamp, '2026-01-16T08:30:00.000+09:00');
  // UTC and Etc zones have no place
  assert.deepEqual(await handlers.Zone({ location: 'Etc/GMT+5' }, ctx), {
    abbreviation: '-05', country: '', dst: false, latitude: 0, localtime: '2026-01-15 18:30', location: 'GMT+5', longitude: 0, offset: -5, region: '', timezone: 'Etc/GMT+5',
  });
});

test('without the tz database\'s files the service answers from Intl: zones and cities, no country or coordinates', async () => {
  const handlers = timeHandlers({ dir: '/nonexistent/zoneinfo', now: () => Date.UTC(2026, 6, 1, 12) });
  const z = await handlers.Zone({ location: 'london' }, ctx);
  assert.deepEqual(z, { abbreviation: 'GMT+1', country: '', dst: true, latitude: 0, localtime: '2026-07-01 13:00', location: 'London', longitude: 0, offset: 1, region: 'Europe', timezone: 'Europe/London' });
  assert.equal((await handlers.Now({ location: 'America/New_York' }, ctx)).timezone, 'EDT');
  assert.equal((await handlers.Zone({ location: 'Asia/Kolkata' }, ctx)).offset, 5.5);
  await assert.rejects(async () => handlers.Now({ location: 'Atlantis' }, ctx), (err: { code?: number }) => err.code === 404);
});
