import { defineService, endpoint, serverStream, z } from '@micro/sdk';
import { jsonObject, m3oRequest, needs, topicName } from '@micro/services-kit';

/**
 * M3O's event API: durable topics. Publish stores an event; Consume streams a topic's
 * events from now (or from a time), alone or shared among the members of a group; Read
 * pages through what a topic holds. Prices are in units of 1/10,000 of a cent.
 */

/** A group: letters, digits, `_`, `.` and `-`, not starting with `.` or `-`. */
export const GROUP = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;
export const GROUP_MAX = 128;
export const READ_DEFAULT = 25;
export const READ_MAX = 1000;

const object = () => z.record(z.string(), z.unknown());

export const Ev = z.object({ id: z.string(), message: object(), timestamp: z.string() });
export const Frame = z.object({ topic: z.string(), id: z.string(), timestamp: z.string(), message: object() });

export const event = defineService({
  name: 'event',
  public: true,
  description: 'Durable event topics: publish, consume (a stream, with groups) and read',
  endpoints: {
    Publish: endpoint({
      description: 'Stores a message (a JSON object, at most 256 KiB) on a topic; it is kept for a week',
      request: m3oRequest({ topic: topicName(), message: jsonObject() }),
      response: z.object({}),
      price: 1,
      freeQuota: 100_000,
    }),
    Consume: serverStream({
      description: 'Streams the events of a topic published from now (or from `offset`, a time); the members of a `group` share them',
      request: m3oRequest({
        topic: topicName(),
        group: z
          .string()
          .max(GROUP_MAX, `must be at most ${GROUP_MAX} characters`)
          .regex(GROUP, 'may hold only letters, digits, "_", "." and "-", starting with a letter, digit or "_"')
          .optional(),
        offset: z.string(needs('must be a time as a string: RFC 3339 or seconds since 1970')).max(64, 'must be a time: RFC 3339 or seconds since 1970').optional(),
      }),
      response: Frame,
      price: 10,
      freeQuota: 10_000,
    }),
    Read: endpoint({
      description: 'A page of the events a topic holds, oldest first: `limit` (default 25) after skipping `offset`',
      request: m3oRequest({
        topic: topicName(),
        limit: z.number(needs('must be a number')).int('must be a whole number').min(1, 'must be at least 1').max(READ_MAX, `must be at most ${READ_MAX}`).optional(),
        offset: z.number(needs('must be a number')).int('must be a whole number').min(0, 'must be 0 or more').max(Number.MAX_SAFE_INTEGER).optional(),
      }),
      response: z.object({ events: z.array(Ev) }),
      readonly: true,
      price: 1,
      freeQuota: 100_000,
    }),
  },
});
