import { errors, type Context, type Engines, type Message } from '@micro/sdk';
import { checkJson, publicService } from '@micro/services-kit';
import { mq } from './definition.js';

/*
 * M3O's topics are broker topics `mq.<topic>` in the caller's namespace (in memory on the
 * local profile, NATS subjects on nats), so they never meet the topics the tenant's own
 * services use. Nothing is stored: a subscriber hears what is published while it is there.
 */

const PREFIX = 'mq.';
/** messages a subscriber may fall behind by before its stream ends with a 503 (it is not reading) */
export const SUBSCRIBER_BUFFER = 1000;

/** What a subscription has received and the stream has not sent yet; bounded. */
class Inbox {
  private readonly items: Message[] = [];
  private wake: (() => void) | undefined;
  overflowed = false;
  ended = false;

  push(message: Message): void {
    if (this.ended) return;
    if (this.items.length >= SUBSCRIBER_BUFFER) {
      this.overflowed = true;
      this.end();
      return;
    }
    this.items.push(message);
    this.poke();
  }

  end(): void {
    this.ended = true;
    this.poke();
  }

  /** The next message, or undefined once ended. */
  async next(): Promise<Message | undefined> {
    while (this.items.length === 0 && !this.ended) await new Promise<void>((resolve) => (this.wake = resolve));
    if (this.overflowed) throw errors.ServiceUnavailable('mq', `the subscriber fell more than ${SUBSCRIBER_BUFFER} messages behind; subscribe again`);
    return this.ended ? undefined : this.items.shift();
  }

  private poke(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export const service = publicService(mq, (engines: Engines) => ({
  async Publish({ topic, message }, ctx: Context) {
    checkJson('mq', 'message', message);
    await engines.broker.publish(PREFIX + topic, message, { namespace: ctx.tenant });
    return {};
  },

  async *Subscribe({ topic }, ctx: Context) {
    const inbox = new Inbox();
    const subscription = await engines.broker.subscribe(PREFIX + topic, (m) => inbox.push(m), { namespace: ctx.tenant });
    const stop = () => inbox.end();
    ctx.signal.addEventListener('abort', stop, { once: true });
    try {
      for (let m = await inbox.next(); m !== undefined; m = await inbox.next()) {
        // only the service publishes objects here; anything else the tenant's own code sent is wrapped
        yield { topic, message: isObject(m.body) ? m.body : { value: m.body } };
      }
    } finally {
      ctx.signal.removeEventListener('abort', stop);
      await subscription.unsubscribe().catch(() => undefined);
    }
  },
}));
