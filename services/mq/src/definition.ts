import { defineService, endpoint, serverStream, z } from '@micro/sdk';
import { jsonObject, m3oRequest, topicName } from '@micro/services-kit';

/**
 * M3O's mq API: ephemeral publish/subscribe. A message reaches the subscribers connected
 * when it is published and is kept nowhere. Prices are in units of 1/10,000 of a cent.
 */

export const mq = defineService({
  name: 'mq',
  public: true,
  description: 'Ephemeral publish/subscribe: messages reach the subscribers connected at the time',
  endpoints: {
    Publish: endpoint({
      description: 'Sends a message (a JSON object, at most 256 KiB) to the subscribers of a topic',
      request: m3oRequest({ topic: topicName(), message: jsonObject() }),
      response: z.object({}),
      price: 1,
      freeQuota: 100_000,
    }),
    Subscribe: serverStream({
      description: 'Streams the messages published to a topic from now on',
      request: m3oRequest({ topic: topicName() }),
      response: z.object({ topic: z.string(), message: z.record(z.string(), z.unknown()) }),
      price: 10,
      freeQuota: 10_000,
    }),
  },
});
