import { errors, type Context, type Engines, type Event } from '@micro/sdk';
import { publicService, rfc3339, tenantStore } from '@micro/services-kit';
import { CHANNELS_MAX, KEPT, LIST_DEFAULT, stream, TEXT_MAX } from './definition.js';

/*
 * A channel is a record of the caller's store (database `stream`, key: its name) and a
 * topic `stream.<name>` of the caller's events, which keeps the newest 1,000 messages
 * (the topic's retention; reads never look further back, so the bound holds between
 * sweeps too). Both live in the caller's namespace: quotas count them, purge deletes them.
 */

interface ChannelRecord {
  name: string;
  description: string;
  created: number;
}

const topicOf = (channel: string) => `stream.${channel}`;

function notFound(channel: string) {
  return errors.NotFound('stream', `channel ${channel} does not exist: create it with CreateChannel`);
}

/** A message as M3O shows it. */
function message(channel: string, e: Event) {
  const payload = e.payload as { text?: unknown } | null;
  return { id: e.id, channel, text: typeof payload?.text === 'string' ? payload.text : '', timestamp: rfc3339(e.timestamp), metadata: e.metadata ?? {} };
}

/** The first `max` characters (code points, so that no character is cut in half). */
function cut(text: string, max: number): string {
  if (text.length <= max) return text;
  return Array.from(text).slice(0, max).join('');
}

export const service = publicService(stream, (engines: Engines) => {
  const channels = (ctx: Context) => tenantStore(engines.store, ctx, 'stream');

  async function existing(ctx: Context, name: string): Promise<ChannelRecord | undefined> {
    const [rec] = await channels(ctx).read(name);
    return rec?.value as ChannelRecord | undefined;
  }

  return {
    async CreateChannel({ name, description }, ctx: Context) {
      const found = await existing(ctx, name);
      if (!found && (await channels(ctx).list({ limit: CHANNELS_MAX + 1 })).length >= CHANNELS_MAX) {
        throw errors.Conflict('stream', `a tenant may have at most ${CHANNELS_MAX} channels`);
      }
      const record: ChannelRecord = { name, description: description ?? found?.description ?? '', created: found?.created ?? Date.now() };
      await channels(ctx).write({ key: name, value: record });
      return {};
    },

    async SendMessage({ channel, text }, ctx: Context) {
      if (!(await existing(ctx, channel))) throw notFound(channel);
      const sent = await engines.events.publish(topicOf(channel), { text: cut(text, TEXT_MAX) }, { namespace: ctx.tenant });
      // the topic exists from its first message on: bound it then (and again now and then, should that have failed)
      if (sent.offset % KEPT === 1) await engines.events.setRetention(topicOf(channel), { maxEvents: KEPT }, { namespace: ctx.tenant });
      return {};
    },

    async ListMessages({ channel, limit }, ctx: Context) {
      if (!(await existing(ctx, channel))) throw notFound(channel);
      const want = limit ?? LIST_DEFAULT;
      const topic = topicOf(channel);
      const head = await engines.events.read(topic, { namespace: ctx.tenant, limit: 1 }).catch(() => undefined);
      if (!head || head.last === 0) return { channel, messages: [] };
      const from = Math.max(head.first, head.last - Math.min(want, KEPT) + 1);
      const page = await engines.events.read(topic, { namespace: ctx.tenant, offset: from, limit: want });
      return { channel, messages: page.events.map((e) => message(channel, e)) };
    },

    async ListChannels(_req: unknown, ctx: Context) {
      const records = await channels(ctx).read('', { prefix: true, limit: CHANNELS_MAX });
      const topics = new Map((await engines.events.topics({ namespace: ctx.tenant })).map((t) => [t.name, t]));
      return {
        channels: records.map((r) => {
          const c = r.value as ChannelRecord;
          const last = topics.get(topicOf(c.name))?.lastTimestamp ?? c.created;
          return { name: c.name, description: c.description, last_active: rfc3339(last) };
        }),
      };
    },
  };
});
