import { randomUUID } from 'node:crypto';
import { errors, type Context, type Engines, type Event, type Events, type StartOffset } from '@micro/sdk';
import { checkJson, publicService, rfc3339 } from '@micro/services-kit';
import { event, READ_DEFAULT } from './definition.js';

/*
 * M3O's topics live in the caller's namespace of the events engine (SQLite on the local
 * profile, JetStream on nats: durability follows the profile), under `event.` so that they
 * never meet the topics the tenant's own services use. A group of M3O's is group `g.<name>`;
 * a consumer without a group gets a group of its own, `anon.<uuid>`, deleted when it goes
 * (and, should a crash leave one behind, by the next consumer without a group).
 */

const PREFIX = 'event.';
const ANONYMOUS = 'anon.';

/** The engine's topic of an M3O topic (checked by the definition). */
export function engineTopic(topic: string): string {
  return PREFIX + topic;
}

/**
 * Where events that failed too often would go: outside `event.`, so no M3O topic is ever a
 * dead-letter topic. Consume acknowledges each event once it is handed on, so only events
 * of consumers that stop reading for the ack wait (30 s) five times end up there.
 */
function deadLetter(topic: string): string {
  return `dead.${PREFIX}${topic}`;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** An event's payload as M3O's `message` (an object; anything else the tenant's own code published is wrapped). */
function messageOf(e: Event): Record<string, unknown> {
  return isObject(e.payload) ? e.payload : { value: e.payload };
}

/**
 * Consume's `offset`: a time, as RFC 3339 or as whole seconds since 1970 (M3O's i64
 * timestamps); a 400 naming the field otherwise.
 */
export function startTime(offset: string): number {
  const text = offset.trim();
  const ms = /^\d{1,12}$/.test(text) ? Number(text) * 1000 : /^\d{4}-\d{2}-\d{2}T/.test(text) ? Date.parse(text) : Number.NaN;
  if (!Number.isFinite(ms)) throw errors.BadRequest('event', `invalid request: offset: must be a time: RFC 3339 (2024-01-02T15:04:05Z) or seconds since 1970, not ${JSON.stringify(text.slice(0, 40))}`);
  return ms;
}

/** Forgets the groups of consumers without a group that went away (a crash leaves them). */
async function sweepAnonymous(events: Events, topic: string, namespace: string): Promise<void> {
  const groups = await events.groups(topic, { namespace }).catch(() => []);
  for (const g of groups) {
    if (g.name.startsWith(ANONYMOUS) && g.members === 0) await events.deleteGroup(topic, g.name, { namespace }).catch(() => undefined);
  }
}

/** A consumer's group is deleted once its member is gone; closing is asynchronous, so a 409 is retried briefly. */
async function dropGroup(events: Events, topic: string, group: string, namespace: string): Promise<void> {
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      await events.deleteGroup(topic, group, { namespace });
      return;
    } catch (err) {
      if (errors.isMicroError(err) && err.code === 409) await new Promise((r) => setTimeout(r, 50 * (attempt + 1)));
      else return;
    }
  }
}

/** Events M3O's way: skip `offset` of the events the topic holds, then `limit`; [] for a topic never published to. */
async function readPage(events: Events, topic: string, namespace: string, limit: number, skip: number): Promise<Event[]> {
  try {
    const page = await events.read(topic, { namespace, offset: skip + 1, limit });
    // retention removed the oldest: count the skip from the oldest the topic holds
    if (skip > 0 && page.first > 1) return (await events.read(topic, { namespace, offset: page.first + skip, limit })).events;
    return page.events;
  } catch (err) {
    if (errors.isMicroError(err) && err.code === 404) return [];
    throw err;
  }
}

function frame(topic: string, e: Event) {
  return { topic, id: e.id, timestamp: rfc3339(e.timestamp), message: messageOf(e) };
}

export const service = publicService(event, (engines: Engines) => ({
  async Publish({ topic, message }, ctx: Context) {
    checkJson('event', 'message', message);
    await engines.events.publish(engineTopic(topic), message, { namespace: ctx.tenant });
    return {};
  },

  async *Consume({ topic, group, offset }, ctx: Context) {
    const namespace = ctx.tenant;
    const name = engineTopic(topic);
    const start: StartOffset = offset !== undefined && offset.trim() !== '' ? { time: startTime(offset) } : 'latest';
    if (group === undefined || group === '') await sweepAnonymous(engines.events, name, namespace);
    const groupName = group ? `g.${group}` : `${ANONYMOUS}${randomUUID()}`;
    const consumer = await engines.events.consume(name, { namespace, group: groupName, offset: start, deadLetter: deadLetter(topic) });
    // a caller that goes away while no event comes: the loop is waiting, so end it from here
    const stop = () => void consumer.close().catch(() => undefined);
    ctx.signal.addEventListener('abort', stop, { once: true });
    try {
      for await (const delivery of consumer) {
        yield frame(topic, delivery.event);
        // handed on: done for the group (an event whose caller left before it was sent goes to another member)
        await delivery.ack();
      }
    } finally {
      ctx.signal.removeEventListener('abort', stop);
      await consumer.close().catch(() => undefined);
      if (!group) await dropGroup(engines.events, name, groupName, namespace);
    }
  },

  async Read({ topic, limit, offset }, ctx: Context) {
    const page = await readPage(engines.events, engineTopic(topic), ctx.tenant, limit ?? READ_DEFAULT, offset ?? 0);
    return { events: page.map((e) => ({ id: e.id, message: messageOf(e), timestamp: rfc3339(e.timestamp) })) };
  },
}));
