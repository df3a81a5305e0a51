import { randomUUID } from 'node:crypto';
import { fromJSON, MicroError, toMicroError } from '../errors/errors.js';
import { createClient, type TypedClient } from '../client/typed.js';
import type { Client } from '../client/client.js';
import type { ResponseStream } from '../client/stream.js';
import { Pipe } from '../util/pipe.js';
import { checkConsume, checkInt, checkReason, encodeMetadata, encodePayload } from './checks.js';
import { eventsService, type ConsumeRequest, type ConsumeResponse } from './definition.js';
import {
  EVENTS_ERROR_ID,
  LIMITS,
  type ConsumeOptions,
  type Consumer,
  type Delivery,
  type Event,
  type Events,
  type GroupInfo,
  type NamespaceOptions,
  type PublishOptions,
  type ReadOptions,
  type ReadResult,
  type RetentionPolicy,
  type StartOffset,
  type TopicInfo,
} from './events.js';

export interface RemoteEventsOptions {
  /**
   * Deliveries a consumer asks for ahead of its loop (default 0: one is asked for when
   * the loop asks, as with an in-process consumer). More saves a round trip per event,
   * but a delivery waiting in the buffer is handed out already: its ack wait runs, and
   * it is not handed to another member that is free.
   */
  prefetch?: number;
}

/**
 * Events that are the events service of a `micro server`, reached through `client`
 * (whose address is the server's). What services use when MICRO_SERVER is set.
 *
 * A consumer is one stream to the server. If the stream breaks (the server restarts,
 * the network fails), the consumer ends with the error; consume again to go on: the
 * group kept its position, and what this consumer held is handed out again.
 */
export class RemoteEvents implements Events {
  readonly name = 'remote';
  private readonly api: TypedClient<typeof eventsService>;
  private readonly prefetch: number;

  constructor(client: Client, options: RemoteEventsOptions = {}) {
    this.api = createClient(eventsService, client);
    this.prefetch = checkInt(options.prefetch, 'prefetch', 0, LIMITS.maxInFlight, 0);
  }

  async publish(topic: string, payload: unknown, options: PublishOptions = {}): Promise<Event> {
    // checked here as the engine would, so that what cannot be sent fails the same way
    encodePayload(payload);
    encodeMetadata(options.metadata);
    const { event } = await this.api.Publish({
      topic,
      payload,
      metadata: options.metadata,
      // a publish retried after a lost answer is then stored once
      id: options.id ?? randomUUID(),
      namespace: options.namespace,
    });
    return event as Event;
  }

  async read(topic: string, options: ReadOptions = {}): Promise<ReadResult> {
    const from = options.from instanceof Date ? options.from.getTime() : options.from;
    const res = await this.api.Read({ topic, offset: options.offset, from, limit: options.limit, namespace: options.namespace });
    return res as ReadResult;
  }

  async topics(options: NamespaceOptions = {}): Promise<TopicInfo[]> {
    return (await this.api.Topics({ namespace: options.namespace })).topics;
  }

  async groups(topic: string, options: NamespaceOptions = {}): Promise<GroupInfo[]> {
    return (await this.api.Groups({ topic, namespace: options.namespace })).groups;
  }

  async deleteGroup(topic: string, group: string, options: NamespaceOptions = {}): Promise<void> {
    await this.api.DeleteGroup({ topic, group, namespace: options.namespace });
  }

  async setRetention(topic: string, policy: RetentionPolicy, options: NamespaceOptions = {}): Promise<TopicInfo> {
    return (await this.api.SetRetention({ topic, retention: policy, namespace: options.namespace })).topic;
  }

  async consume(topic: string, options: ConsumeOptions): Promise<Consumer> {
    // checked here as the engine would: the server checks again
    const checked = checkConsume(topic, options);
    const consumer = new RemoteConsumer(checked.topic, checked.group, Math.min(this.prefetch, checked.maxInFlight));
    await consumer.open((requests) => this.api.Consume(requests), {
      topic,
      group: options.group,
      offset: wireOffset(options.offset),
      ackWait: options.ackWait,
      maxRetries: options.maxRetries,
      deadLetter: options.deadLetter,
      maxInFlight: options.maxInFlight,
      namespace: options.namespace,
    });
    return consumer;
  }
}

function wireOffset(offset: StartOffset | undefined): NonNullable<ConsumeRequest['subscribe']>['offset'] {
  if (offset && typeof offset === 'object' && 'time' in offset && offset.time instanceof Date) return { time: offset.time.getTime() };
  return offset as NonNullable<ConsumeRequest['subscribe']>['offset'];
}

interface Pending {
  resolve: () => void;
  reject: (err: unknown) => void;
}

/**
 * A consumer over one Consume stream: the server sends a delivery per credit, and the
 * consumer gives credit for each read waiting plus the prefetch; settles are answered by
 * seq once durable.
 */
class RemoteConsumer implements Consumer {
  private readonly requests = new Pipe<ConsumeRequest>(Number.MAX_SAFE_INTEGER);
  private stream: ResponseStream<ConsumeResponse> | undefined;
  private readonly buffer: RemoteDelivery[] = [];
  private readonly waiters: Array<{ resolve: (r: IteratorResult<Delivery>) => void; reject: (err: unknown) => void }> = [];
  private readonly pending = new Map<number, Pending>();
  private seq = 0;
  /** credit given and not yet used by a delivery */
  private outstanding = 0;
  private ended = false;
  private closing = false;
  private failure: MicroError | undefined;
  private pumped: Promise<void> = Promise.resolve();

  constructor(
    readonly topic: string,
    readonly group: string,
    private readonly prefetch: number,
  ) {}

  async open(call: (requests: AsyncIterable<ConsumeRequest>) => ResponseStream<ConsumeResponse>, subscribe: NonNullable<ConsumeRequest['subscribe']>): Promise<void> {
    this.outstanding = this.prefetch;
    this.requests.offer({ subscribe, credit: this.prefetch });
    const stream = call(this.requests);
    this.stream = stream;
    let first: IteratorResult<ConsumeResponse>;
    try {
      first = await stream.next();
    } catch (err) {
      this.requests.end();
      throw err;
    }
    if (first.done || !first.value.subscribed) {
      stream.cancel('no subscription');
      throw new MicroError(EVENTS_ERROR_ID, 502, 'the events service did not confirm the subscription');
    }
    this.pumped = this.pump(stream);
  }

  private async pump(stream: ResponseStream<ConsumeResponse>): Promise<void> {
    try {
      for await (const message of stream) {
        if (message.delivery) {
          const d = message.delivery;
          const delivery = new RemoteDelivery(this, d.id, d.event as Event, d.attempt, d.deadline);
          this.outstanding = Math.max(0, this.outstanding - 1);
          const waiter = this.waiters.shift();
          if (waiter) waiter.resolve({ value: delivery, done: false });
          else this.buffer.push(delivery);
          this.topUp();
        }
        if (message.seq !== undefined) {
          const p = this.pending.get(message.seq);
          this.pending.delete(message.seq);
          if (p) {
            if (message.error) p.reject(fromJSON(message.error, EVENTS_ERROR_ID));
            else p.resolve();
          }
        }
      }
      this.finish(undefined);
    } catch (err) {
      this.finish(toMicroError(err, EVENTS_ERROR_ID));
    }
  }

  /** The stream is over: waiting reads end (or fail), settles in flight fail. */
  private finish(err: MicroError | undefined): void {
    this.ended = true;
    if (err && !this.closing) this.failure = err;
    const reason = this.failure ?? new MicroError(EVENTS_ERROR_ID, 410, 'the consumer is closed; its deliveries went back to the group');
    for (const w of this.waiters.splice(0)) {
      if (this.failure) w.reject(this.failure);
      else w.resolve({ value: undefined, done: true });
    }
    for (const p of this.pending.values()) p.reject(reason);
    this.pending.clear();
    this.requests.end();
  }

  /** Credit for every read waiting and the prefetch, less what is buffered or coming. */
  private topUp(): void {
    if (this.ended || this.closing) return;
    const want = this.waiters.length + this.prefetch - this.buffer.length - this.outstanding;
    if (want > 0) {
      this.outstanding += want;
      this.requests.offer({ credit: want });
    }
  }

  next(): Promise<IteratorResult<Delivery>> {
    const d = this.buffer.shift();
    if (d) {
      this.topUp();
      return Promise.resolve({ value: d, done: false });
    }
    if (this.failure) return Promise.reject(this.failure);
    if (this.ended || this.closing) return Promise.resolve({ value: undefined, done: true });
    const p = new Promise<IteratorResult<Delivery>>((resolve, reject) => this.waiters.push({ resolve, reject }));
    this.topUp();
    return p;
  }

  /** @internal an ack, nack or release, answered by the server once it is durable */
  settle(message: Omit<ConsumeRequest, 'seq'>): Promise<void> {
    if (this.ended || this.closing) {
      return Promise.reject(this.failure ?? new MicroError(EVENTS_ERROR_ID, 410, 'the consumer is closed; its deliveries went back to the group'));
    }
    const seq = this.seq++;
    return new Promise<void>((resolve, reject) => {
      this.pending.set(seq, { resolve, reject });
      this.requests.offer({ ...message, seq });
    });
  }

  async return(): Promise<IteratorResult<Delivery>> {
    await this.close();
    return { value: undefined, done: true };
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  async close(): Promise<void> {
    if (this.closing) return this.pumped;
    this.closing = true;
    for (const w of this.waiters.splice(0)) w.resolve({ value: undefined, done: true });
    if (!this.ended) {
      // deliveries received but never shown go back without counting as attempts
      const unseen = this.buffer.splice(0).map((d) => d.id);
      if (unseen.length > 0) this.requests.offer({ seq: this.seq++, release: unseen });
      // ending our side ends the server's: it hands what we held back to the group
      this.requests.end();
      const timer = setTimeout(() => this.stream?.cancel('consumer closed'), 5_000);
      timer.unref();
      await this.pumped;
      clearTimeout(timer);
    }
  }
}

class RemoteDelivery implements Delivery {
  constructor(
    private readonly consumer: RemoteConsumer,
    readonly id: string,
    readonly event: Event,
    readonly attempt: number,
    readonly deadline: number,
  ) {}

  ack(): Promise<void> {
    return this.consumer.settle({ ack: this.id });
  }

  nack(delay?: number, reason?: string): Promise<void> {
    try {
      // checked here as the engine would: a bad value must not end the stream
      const ms = checkInt(delay, 'delay', 0, LIMITS.nackDelayMax, 0);
      return this.consumer.settle({ nack: this.id, delay: ms, reason: checkReason(reason) });
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }
}
