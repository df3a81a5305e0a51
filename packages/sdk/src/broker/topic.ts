import type { z } from 'zod';
import { BadRequest } from '../errors/errors.js';
import { topicProblem } from './broker.js';
import { formatIssues, isSchema } from '../service/validate.js';
import type { Broker, Message, PublishOptions, SubscribeOptions, Subscription } from './broker.js';

/**
 * Typed topics: a topic name with the zod schema of its messages, declared once and
 * imported by publishers and subscribers alike.
 *
 * ```ts
 * export const userCreated = topic('user.created', z.object({ id: z.string(), name: z.string() }));
 * await publish(broker, userCreated, { id: '1', name: 'Alice' });
 * await subscribe(broker, userCreated, (user) => console.log(user.name));
 * ```
 *
 * The payload is checked on both sides: the publisher learns at once that it sent
 * something wrong, and a subscriber never sees a message that does not match the
 * schema, whoever (any language, any version) published it.
 */

const ID = 'broker';
/** Issues listed in an error message; more are summarised so errors stay bounded. */

export interface Topic<N extends string = string, S extends z.ZodType = z.ZodType> {
  readonly name: N;
  readonly schema: S;
}

/** Declares a typed topic. The name is concrete (no wildcards): it is published to. */
export function topic<const N extends string, S extends z.ZodType>(name: N, schema: S): Topic<N, S> {
  const problem = topicProblem(name, { wildcards: false });
  if (problem) throw BadRequest(ID, `invalid topic ${JSON.stringify(String(name))}: ${problem}`);
  if (!isSchema(schema)) throw BadRequest(ID, `topic ${name}: schema must be a zod schema`);
  return Object.freeze({ name, schema });
}

/**
 * Validates the payload with the topic's schema, then publishes it. The payload goes out
 * as given (its input form), not as parsed: each subscriber parses it itself, and the
 * output of a transforming schema would not necessarily parse a second time.
 */
export async function publish<N extends string, S extends z.ZodType>(
  broker: Broker,
  topic: Topic<N, S>,
  payload: z.input<S>,
  options?: PublishOptions,
): Promise<void> {
  const result = await topic.schema.safeParseAsync(payload);
  if (!result.success) throw BadRequest(ID, `invalid message for topic ${topic.name}: ${formatIssues(result.error.issues)}`);
  await broker.publish(topic.name, payload, options);
}

export interface TypedSubscribeOptions extends SubscribeOptions {
  /** Told about each message dropped because it does not match the schema. */
  onInvalid?: (error: z.ZodError, message: Message) => void;
}

export interface TypedSubscription extends Subscription {
  /** messages dropped because they did not match the schema */
  readonly invalid: number;
}

/**
 * Subscribes with a typed handler. Messages that do not match the schema are dropped
 * and counted (`subscription.invalid`), never passed to the handler: a bad publisher
 * must not be able to break a subscriber's assumptions.
 */
export async function subscribe<N extends string, S extends z.ZodType>(
  broker: Broker,
  topic: Topic<N, S>,
  handler: (payload: z.output<S>, message: Message) => void | Promise<void>,
  options: TypedSubscribeOptions = {},
): Promise<TypedSubscription> {
  const { onInvalid, ...subscribeOptions } = options;
  let invalid = 0;
  const subscription = await broker.subscribe(
    topic.name,
    async (message) => {
      const result = await topic.schema.safeParseAsync(message.body);
      if (!result.success) {
        invalid++;
        onInvalid?.(result.error, message);
        return;
      }
      await handler(result.data, message);
    },
    subscribeOptions,
  );
  return {
    get topic() {
      return subscription.topic;
    },
    get queue() {
      return subscription.queue;
    },
    get invalid() {
      return invalid;
    },
    unsubscribe: () => subscription.unsubscribe(),
  };
}
