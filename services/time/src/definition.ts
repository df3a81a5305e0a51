import { defineService, endpoint, z } from '@micro/sdk';
import { i64Out, m3oRequest } from '@micro/services-kit';

/** The longest `location` looked up (the longest zone name of the tz database has 32 characters). */
export const MAX_LOCATION = 64;

const location = z.string().max(256).optional().describe('an IANA zone name (Europe/London, any case) or a city of the tz database (London); default UTC');
const call = { price: 10, freeQuota: 10_000, idempotent: true, readonly: true };

/** The time service, as M3O's time API: `Now` and `Zone`, from the system's tz database. */
export const time = defineService({
  name: 'time',
  version: '1.0.0',
  description: 'The current time and the time zone of a place, from the tz database',
  public: true,
  endpoints: {
    Now: endpoint({
      ...call,
      description: 'The time now at `location`: localtime HH:MM:SS, RFC 3339 timestamp with the zone\'s offset, zone name, its abbreviation, unix seconds',
      request: m3oRequest({ location }),
      response: z.object({ localtime: z.string(), location: z.string(), timestamp: z.string(), timezone: z.string(), unix: i64Out }),
    }),
    Zone: endpoint({
      ...call,
      description: 'The time zone of `location`: zone name, abbreviation, offset from UTC in hours, whether daylight saving time is in effect, country, region, the coordinates of the zone\'s principal city',
      request: m3oRequest({ location }),
      response: z.object({
        abbreviation: z.string(),
        country: z.string(),
        dst: z.boolean(),
        latitude: z.number(),
        localtime: z.string(),
        location: z.string(),
        longitude: z.number(),
        offset: z.number(),
        region: z.string(),
        timezone: z.string(),
      }),
    }),
  },
});
