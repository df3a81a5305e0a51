import { z } from 'zod';
import { defineService, endpoint, serverStream } from '../service/definition.js';
import { createClient, type TypedClient } from '../client/typed.js';
import type { Client } from '../client/client.js';
import type { ResponseStream } from '../client/stream.js';
import type { Broker, Message, MessageHandler, PublishOptions, SubscribeOptions, Subscription } from './broker.js';

/**
 * The broker as a service: `micro server` serves it and RemoteBroker uses it, so that
 * processes publish to and subscribe from one another. Still fire and forget: a
 * subscriber that is not connected misses what is published meanwhile.
 */
const MessageSchema = z.object({ topic: z.string(), header: z.record(z.string(), z.string()), body: z.unknown() });
const Namespace = z.string().max(255).optional();

export const brokerService = defineService({
  name: 'broker',
  version: '1.0.0',
  description: 'Fire-and-forget publish/subscribe between processes',
  endpoints: {
    Publish: endpoint({
      request: z.object({ topic: z.string().min(1).max(256), body: z.unknown(), header: z.record(z.string(), z.string()).optional(), namespace: Namespace }),
      response: z.object({}),
    }),
    Subscribe: serverStream({
      description: 'The first answer, without a message, says the subscription is in place; each one after it carries a message',
      request: z.object({ topic: z.string().min(1).max(256), queue: z.string().max(256).optional(), namespace: Namespace }),
      response: z.object({ message: MessageSchema.optional() }),
    }),
  },
});

/** Serves a Broker as the broker service (used by `micro server`). */
export function brokerHandlers(broker: Broker) {
  return {
    Publish: async ({ topic, body, header, namespace }: { topic: string; body?: unknown; header?: Record<string, string>; namespace?: string }) => {
      await broker.publish(topic, body, { header, namespace });
      return {};
    },
    async *Subscribe({ topic, queue, namespace }: { topic: string; queue?: string; namespace?: string }, ctx: { signal: AbortSignal }) {
      // messages wait here for the stream's flow control; a subscriber too slow for its
      // topic loses the oldest (fire and forget) rather than growing without bound
      const queued: Message[] = [];
      const LIMIT = 10_000;
      let wake: (() => void) | undefined;
      const sub = await broker.subscribe(
        topic,
        (message) => {
          if (queued.length >= LIMIT) queued.shift();
          queued.push(message);
          wake?.();
        },
        { queue, namespace },
      );
      const stopped = new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve(), { once: true }));
      try {
        yield {};
        while (!ctx.signal.aborted) {
          const next = queued.shift();
          if (next) {
            yield { message: next };
            continue;
          }
          await Promise.race([new Promise<void>((resolve) => (wake = resolve)), stopped]);
          wake = undefined;
        }
      } finally {
        await sub.unsubscribe();
      }
    },
  };
}

/** A Broker that is the broker service of a `micro server`, reached through `client`. */
export class RemoteBroker implements Broker {
  readonly name = 'remote';
  private readonly api: TypedClient<typeof brokerService>;

  constructor(client: Client) {
    this.api = createClient(brokerService, client);
  }

  async publish(topic: string, body: unknown, options: PublishOptions = {}): Promise<void> {
    await this.api.Publish({ topic, body, header: options.header, namespace: options.namespace });
  }

  async subscribe(topic: string, handler: MessageHandler, options: SubscribeOptions = {}): Promise<Subscription> {
    const stream: ResponseStream<{ message?: Message }> = this.api.Subscribe({ topic, queue: options.queue, namespace: options.namespace });
    // the first answer confirms the subscription: only then is it safe to publish
    const first = await stream.next();
    if (first.done) throw new Error(`subscription to ${topic} ended at once`);
    // messages are handled one at a time, in order
    void (async () => {
      try {
        for await (const { message } of stream) {
          if (!message) continue;
          try {
            await handler(message);
          } catch {
            // a failing handler must not end the subscription (as with the memory broker)
          }
        }
      } catch {
        // the stream ended: unsubscribed, or the server went away
      }
    })();
    return {
      topic,
      queue: options.queue,
      unsubscribe: async () => stream.cancel('unsubscribed'),
    };
  }
}
