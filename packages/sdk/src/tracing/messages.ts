import type { Broker, MessageHandler, PublishOptions, SubscribeOptions, Subscription } from '../broker/broker.js';
import type { Consumer, ConsumeOptions, Delivery, Event, Events, PublishOptions as EventPublishOptions } from '../events/events.js';
import type { Context } from '../context/context.js';
import { defaultNamespace } from '../config/env.js';
import { activeTracing, childOf, currentCall, runInCall, type Tracing } from './tracing.js';

/**
 * Pub/sub and events carry the trace: a publish is a PRODUCER span (child of the call
 * being handled, or of a `traceparent` the caller put in the header/metadata itself) and
 * puts its traceparent in the message header (broker) or event metadata (events); a
 * delivery is a CONSUMER span, child of that, and calls made while handling it continue
 * the trace. Without tracing the engines are returned as they are (nothing added).
 */
export function tracedBroker(broker: Broker, tracing: Tracing | undefined = activeTracing()): Broker {
  if (!tracing) return broker;
  const t = tracing;
  return {
    name: broker.name,
    async publish(topic: string, body: unknown, options: PublishOptions = {}): Promise<void> {
      const span = t.span(`publish ${topic}`, 'producer', options.header?.traceparent ?? currentCall()?.traceparent(), attributes(topic, options.namespace));
      try {
        await broker.publish(topic, body, { ...options, header: { ...options.header, traceparent: span.traceparent() } });
        span.end();
      } catch (err) {
        span.end(err);
        throw err;
      }
    },
    subscribe(topic: string, handler: MessageHandler, options?: SubscribeOptions): Promise<Subscription> {
      return broker.subscribe(
        topic,
        async (message) => {
          const tp = message.header?.traceparent;
          // untraced messages are delivered as they are: a trace starts where a call starts
          if (tp === undefined) return handler(message);
          const span = t.span(`deliver ${message.topic}`, 'consumer', tp, attributes(message.topic, options?.namespace));
          try {
            await runInCall(span.parent(), () => handler(message));
            span.end();
          } catch (err) {
            span.end(err);
            throw err;
          }
        },
        options,
      );
    },
    close: broker.close ? () => (broker.close as () => Promise<void>)() : undefined,
  } as Broker;
}

export function tracedEvents(events: Events, tracing: Tracing | undefined = activeTracing()): Events {
  if (!tracing) return events;
  const t = tracing;
  // every method delegates to the engine itself (its own `this`), two of them traced
  return {
    name: events.name,
    publish: async (topic: string, payload: unknown, options: EventPublishOptions = {}): Promise<Event> => {
      const span = t.span(`publish ${topic}`, 'producer', options.metadata?.traceparent ?? currentCall()?.traceparent(), attributes(topic, options.namespace));
      try {
        const event = await events.publish(topic, payload, { ...options, metadata: { ...options.metadata, traceparent: span.traceparent() } });
        span.end();
        return event;
      } catch (err) {
        span.end(err);
        throw err;
      }
    },
    consume: async (topic: string, options: ConsumeOptions): Promise<Consumer> => tracedConsumer(await events.consume(topic, options), t, options.namespace),
    read: (topic, options) => events.read(topic, options),
    topics: (options) => events.topics(options),
    groups: (topic, options) => events.groups(topic, options),
    deleteGroup: (topic, group, options) => events.deleteGroup(topic, group, options),
    setRetention: (topic, policy, options) => events.setRetention(topic, policy, options),
    close: events.close ? () => (events.close as () => Promise<void>)() : undefined,
  } as Events;
}

const parents = new WeakMap<Delivery, Context>();

/**
 * The trace of an event delivery, to pass as CallOptions.parent (calls made while
 * handling an event pulled from a consumer are not inside any call the SDK can see).
 */
export function deliveryParent(delivery: Delivery): Context | undefined {
  return parents.get(delivery);
}

/** Each delivery with a traceparent is a CONSUMER span, from when it is handed out to its ack or nack. */
function tracedConsumer(consumer: Consumer, t: Tracing, namespace: string | undefined): Consumer {
  const wrap = (d: Delivery): Delivery => {
    const tp = d.event.metadata?.traceparent;
    if (tp === undefined) return d;
    const span = t.span(`deliver ${d.event.topic}`, 'consumer', tp, { ...attributes(d.event.topic, namespace), 'micro.group': consumer.group, 'micro.attempt': d.attempt });
    let ended = false;
    const end = (err?: unknown) => {
      if (ended) return;
      ended = true;
      span.end(err);
    };
    const traced: Delivery = {
      id: d.id,
      event: d.event,
      attempt: d.attempt,
      deadline: d.deadline,
      ack: async () => {
        try {
          await d.ack();
          end();
        } catch (err) {
          end(err);
          throw err;
        }
      },
      nack: async (delay?: number, reason?: string) => {
        end(new Error(reason ?? 'nacked'));
        await d.nack(delay, reason);
      },
    };
    parents.set(traced, childOf(undefined, span.traceId, span.spanId));
    return traced;
  };
  const wrapped: Consumer = {
    get topic() {
      return consumer.topic;
    },
    get group() {
      return consumer.group;
    },
    close: () => consumer.close(),
    next: async () => {
      const r = await consumer.next();
      return r.done ? r : { done: false, value: wrap(r.value) };
    },
    // leaving a for-await loop closes the consumer, as it does unwrapped
    return: (value?: unknown) => (consumer.return ? consumer.return(value) : consumer.close().then(() => ({ done: true as const, value: undefined }))),
    [Symbol.asyncIterator]: () => wrapped,
  };
  return wrapped;
}

function attributes(topic: string, namespace: string | undefined): Record<string, string> {
  const call = currentCall();
  // the namespace of the engine call, else of the call being handled, else the process's
  const ns = namespace ?? (call?.namespace || defaultNamespace());
  return { 'micro.service': call?.service || process.env.MICRO_SERVICE_NAME || 'client', 'micro.topic': topic.slice(0, 200), 'micro.namespace': ns };
}
