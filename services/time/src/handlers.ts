import type { Handlers } from '@micro/sdk';
import { publicService, str64 } from '@micro/services-kit';
import { localClock } from './clock.js';
import { time } from './definition.js';
import { ZoneDatabase, type ZoneDatabaseOptions } from './zones.js';

export { ZoneDatabase } from './zones.js';
export type { ZoneDatabaseOptions } from './zones.js';

export interface TimeOptions extends ZoneDatabaseOptions {
  /** the clock, epoch ms (default Date.now) */
  now?: () => number;
}

/** The time service's handlers on the tz database of `options.dir`. */
export function timeHandlers(options: TimeOptions = {}): Handlers<typeof time> {
  const zones = new ZoneDatabase(options);
  const now = options.now ?? Date.now;
  const clockOf = async (location: string | undefined) => {
    const zone = await zones.resolve(location);
    const ms = now();
    return { zone, ms, clock: localClock(zone, ms, await zones.rule(zone)) };
  };
  return {
    async Now({ location }) {
      const { zone, ms, clock } = await clockOf(location);
      return { localtime: clock.time, location: zone, timestamp: clock.timestamp, timezone: clock.abbreviation, unix: str64(Math.floor(ms / 1000)) };
    },
    async Zone({ location }) {
      const { zone, clock } = await clockOf(location);
      const where = await zones.where(zone);
      return {
        abbreviation: clock.abbreviation,
        country: where?.countryName ?? '',
        dst: clock.dst,
        latitude: where?.latitude ?? 0,
        localtime: `${clock.date} ${clock.time.slice(0, 5)}`,
        location: zone.includes('/') ? (zone.split('/').pop() as string).replace(/_/g, ' ') : zone,
        longitude: where?.longitude ?? 0,
        offset: clock.offset / 60,
        region: zone.includes('/') && !zone.startsWith('Etc/') ? (zone.split('/')[0] as string) : '',
        timezone: zone,
      };
    },
  };
}

export const service = publicService(time, () => timeHandlers());
