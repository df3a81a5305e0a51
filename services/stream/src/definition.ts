import { defineService, endpoint, z } from '@micro/sdk';
import { m3oRequest, needs } from '@micro/services-kit';

/**
 * M3O's stream API: channels of short text messages, kept while they are recent (the
 * newest 1,000 of a channel). Not a WebSocket API: messages are sent and listed by calls.
 * Prices are in units of 1/10,000 of a cent.
 */

export const CHANNEL = /^[A-Za-z0-9_-]+$/;
export const CHANNEL_MAX = 64;
export const DESCRIPTION_MAX = 512;
/** characters of a message kept; the rest is cut */
export const TEXT_MAX = 512;
/** messages a channel keeps, the newest */
export const KEPT = 1000;
export const LIST_DEFAULT = 25;
/** channels a tenant may have */
export const CHANNELS_MAX = 500;

const channel = z
  .string(needs('must be a string'))
  .min(1, 'required')
  .max(CHANNEL_MAX, `must be at most ${CHANNEL_MAX} characters`)
  .regex(CHANNEL, 'may hold only letters, digits, "_" and "-"');

const Channel = z.object({ name: z.string(), description: z.string(), last_active: z.string() });
const Message = z.object({ id: z.string(), channel: z.string(), text: z.string(), timestamp: z.string(), metadata: z.record(z.string(), z.string()) });

export const stream = defineService({
  name: 'stream',
  public: true,
  description: 'Channels of short text messages: create, send, list',
  endpoints: {
    CreateChannel: endpoint({
      description: 'Creates a channel (or sets the description of one that exists)',
      request: m3oRequest({ name: channel, description: z.string(needs('must be a string')).max(DESCRIPTION_MAX, `must be at most ${DESCRIPTION_MAX} characters`).optional() }),
      response: z.object({}),
      idempotent: true,
      price: 1,
      freeQuota: 10_000,
    }),
    SendMessage: endpoint({
      description: `Sends a text message to a channel (cut to ${TEXT_MAX} characters); a channel keeps its newest ${KEPT}`,
      request: m3oRequest({ channel, text: z.string(needs('must be a string')).min(1, 'required') }),
      response: z.object({}),
      price: 1,
      freeQuota: 100_000,
    }),
    ListMessages: endpoint({
      description: `The newest messages of a channel (limit, default ${LIST_DEFAULT}), oldest first`,
      request: m3oRequest({ channel, limit: z.number(needs('must be a number')).int('must be a whole number').min(1, 'must be at least 1').max(KEPT, `must be at most ${KEPT}`).optional() }),
      response: z.object({ channel: z.string(), messages: z.array(Message) }),
      readonly: true,
      price: 1,
      freeQuota: 100_000,
    }),
    ListChannels: endpoint({
      description: 'Every channel, with when a message was last sent to it',
      request: z.object({}).passthrough(),
      response: z.object({ channels: z.array(Channel) }),
      readonly: true,
      price: 1,
      freeQuota: 10_000,
    }),
  },
});
