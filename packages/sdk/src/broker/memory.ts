import { BadRequest, ServiceUnavailable } from '../errors/errors.js';
import { DEFAULT_NAMESPACE } from '../registry/registry.js';
import { matchTokens, topicProblem } from './broker.js';
import type { Broker, Message, MessageHandler, PublishOptions, SubscribeOptions, Subscription } from './broker.js';

/**
 * An in-process broker: the embedded engine of `micro server` and the broker of unit
 * tests. Same semantics as the distributed ones: fire and forget, fan-out to plain
 * subscribers, one member per queue group, NATS-style wildcards, namespaces apart.
 */

const ID = 'broker';
const MAX_NAME_LENGTH = 256;

export interface MemoryBrokerOptions {
  /**
   * Told about every handler that throws or rejects. The broker itself swallows those
   * errors: a failing subscriber must not crash the process or disturb the others.
   */
  onError?: (err: unknown, message: Message) => void;
  /**
   * Messages waiting for (or running in) one subscription's handler before further
   * messages to it are dropped, like a NATS slow consumer. Bounds memory when a
   * handler cannot keep up with the publishers. Default 65536.
   */
  maxPending?: number;
}

export interface MemoryBrokerStats {
  /** publish calls accepted */
  published: number;
  /** messages handed to a handler */
  delivered: number;
  /** handlers that threw or rejected */
  failed: number;
  /** messages not delivered because the subscription had too many pending */
  dropped: number;
  /** live subscriptions */
  subscriptions: number;
}

interface Sub {
  readonly handler: MessageHandler;
  active: boolean;
  /** queued or running deliveries */
  pending: number;
}

/** Subscribers sharing a queue name on one topic pattern: each message goes to one of them. */
class Group {
  readonly members: Sub[] = [];
  private next = 0;

  /** The next member in turn that has room, or undefined when all are full. */
  pick(maxPending: number): Sub | undefined {
    const n = this.members.length;
    for (let tried = 0; tried < n; tried++) {
      const sub = this.members[this.next % n] as Sub;
      this.next = (this.next + 1) % n;
      if (sub.pending < maxPending) return sub;
    }
    return undefined;
  }
}

/** All subscriptions to one topic pattern in one namespace. */
interface Entry {
  readonly tokens: readonly string[];
  readonly plain: Set<Sub>;
  readonly groups: Map<string, Group>;
}

/** One namespace. Concrete patterns are looked up directly; only wildcards are scanned. */
interface Space {
  readonly exact: Map<string, Entry>;
  readonly wild: Map<string, Entry>;
}

export class MemoryBroker implements Broker {
  readonly name = 'memory';
  private readonly spaces = new Map<string, Space>();
  private readonly onError: ((err: unknown, message: Message) => void) | undefined;
  private readonly maxPending: number;
  private closed = false;
  private readonly counts = { published: 0, delivered: 0, failed: 0, dropped: 0, subscriptions: 0 };

  constructor(options: MemoryBrokerOptions = {}) {
    const maxPending = options.maxPending ?? 65536;
    if (!Number.isInteger(maxPending) || maxPending < 1) throw BadRequest(ID, 'maxPending must be a positive integer');
    this.maxPending = maxPending;
    this.onError = options.onError;
  }

  async publish(topic: string, body: unknown, options: PublishOptions = {}): Promise<void> {
    this.ensureOpen();
    checkTopic(topic, false);
    const namespace = checkNamespace(options.namespace);
    const header = checkHeader(options.header);

    const targets = this.route(namespace, topic);
    // Copy now, before returning: the publisher may change its object right after, and
    // each subscriber gets its own copy so none can change what another one sees. A body
    // that cannot be copied fails the same way whether or not anyone listens.
    const bodies = targets.length === 0 ? [copy(body)] : targets.map(() => copy(body));
    this.counts.published++;
    targets.forEach((sub, i) => this.enqueue(sub, { topic, header: { ...header }, body: bodies[i] }));
  }

  async subscribe(topic: string, handler: MessageHandler, options: SubscribeOptions = {}): Promise<Subscription> {
    this.ensureOpen();
    if (typeof handler !== 'function') throw BadRequest(ID, 'subscribe needs a handler function');
    checkTopic(topic, true);
    const namespace = checkNamespace(options.namespace);
    const queue = options.queue === undefined ? undefined : checkName('queue', options.queue);

    const space = this.space(namespace);
    const tokens = topic.split('.');
    const index = tokens.some((t) => t === '*' || t === '>') ? space.wild : space.exact;
    let entry = index.get(topic);
    if (!entry) {
      entry = { tokens, plain: new Set(), groups: new Map() };
      index.set(topic, entry);
    }
    const sub: Sub = { handler, active: true, pending: 0 };
    if (queue === undefined) {
      entry.plain.add(sub);
    } else {
      let group = entry.groups.get(queue);
      if (!group) entry.groups.set(queue, (group = new Group()));
      group.members.push(sub);
    }
    this.counts.subscriptions++;

    const remove = (): void => {
      if (!sub.active) return;
      sub.active = false;
      this.counts.subscriptions--;
      const e = index.get(topic);
      if (!e) return;
      if (queue === undefined) e.plain.delete(sub);
      else {
        const group = e.groups.get(queue);
        if (group) {
          const at = group.members.indexOf(sub);
          if (at >= 0) group.members.splice(at, 1);
          if (group.members.length === 0) e.groups.delete(queue);
        }
      }
      if (e.plain.size === 0 && e.groups.size === 0) index.delete(topic);
      // forget namespaces nobody listens to, so their number stays bounded
      if (space.exact.size === 0 && space.wild.size === 0 && this.spaces.get(namespace) === space) this.spaces.delete(namespace);
    };
    const subscription: Subscription = { topic, queue, unsubscribe: async () => remove() };
    return subscription;
  }

  /** Ends every subscription; messages not yet delivered are dropped. Further calls fail. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const space of this.spaces.values()) {
      for (const entry of [...space.exact.values(), ...space.wild.values()]) {
        for (const sub of entry.plain) sub.active = false;
        for (const group of entry.groups.values()) for (const sub of group.members) sub.active = false;
      }
    }
    this.spaces.clear();
    this.counts.subscriptions = 0;
  }

  /** Counters since the broker was created, e.g. to see failing handlers in tests or stats. */
  stats(): MemoryBrokerStats {
    return { ...this.counts };
  }

  private ensureOpen(): void {
    if (this.closed) throw ServiceUnavailable(ID, 'broker is closed');
  }

  private space(namespace: string): Space {
    let space = this.spaces.get(namespace);
    if (!space) this.spaces.set(namespace, (space = { exact: new Map(), wild: new Map() }));
    return space;
  }

  /** Every subscription that gets this message: all plain ones, one per queue group. */
  private route(namespace: string, topic: string): Sub[] {
    const space = this.spaces.get(namespace);
    if (!space) return [];
    const targets: Sub[] = [];
    const take = (entry: Entry): void => {
      for (const sub of entry.plain) {
        if (sub.pending < this.maxPending) targets.push(sub);
        else this.counts.dropped++;
      }
      for (const group of entry.groups.values()) {
        const sub = group.pick(this.maxPending);
        if (sub) targets.push(sub);
        else this.counts.dropped++;
      }
    };
    const exact = space.exact.get(topic);
    if (exact) take(exact);
    if (space.wild.size > 0) {
      const tokens = topic.split('.');
      for (const entry of space.wild.values()) if (matchTokens(entry.tokens, tokens)) take(entry);
    }
    return targets;
  }

  private enqueue(sub: Sub, message: Message): void {
    sub.pending++;
    // Deliver on a later microtask: the publisher never runs a handler inside its own
    // publish call, so a handler that publishes cannot recurse into it.
    queueMicrotask(() => this.deliver(sub, message));
  }

  private deliver(sub: Sub, message: Message): void {
    if (!sub.active) {
      sub.pending--;
      return;
    }
    this.counts.delivered++;
    runHandler(sub, message, (err) => this.fail(err, message));
  }

  private fail(err: unknown, message: Message): void {
    this.counts.failed++;
    if (!this.onError) return;
    try {
      this.onError(err, message);
    } catch {
      // the error callback is outside the broker's control; it must not break delivery
    }
  }
}

// The checks below are shared with the NATS broker (broker/nats.ts).
export function checkTopic(topic: string, wildcards: boolean): void {
  const problem = topicProblem(topic, { wildcards });
  if (problem) throw BadRequest(ID, `invalid topic ${show(topic)}: ${problem}`);
}

export function checkNamespace(namespace: string | undefined): string {
  return namespace === undefined ? DEFAULT_NAMESPACE : checkName('namespace', namespace);
}

/** Namespaces and queue names: non-empty, bounded, no whitespace or control characters. */
export function checkName(what: string, value: unknown): string {
  if (typeof value !== 'string' || value.length === 0) throw BadRequest(ID, `${what} must be a non-empty string`);
  if (value.length > MAX_NAME_LENGTH) throw BadRequest(ID, `${what} is longer than ${MAX_NAME_LENGTH} characters`);
  if (/[\s\p{Cc}]/u.test(value)) throw BadRequest(ID, `invalid ${what} ${show(value)}: contains whitespace or a control character`);
  return value;
}

export function checkHeader(header: Record<string, string> | undefined): Record<string, string> {
  if (header === undefined) return {};
  if (typeof header !== 'object' || header === null) throw BadRequest(ID, 'header must be an object of strings');
  for (const [key, value] of Object.entries(header)) {
    if (typeof value !== 'string') throw BadRequest(ID, `header ${show(key)} must be a string`);
  }
  return header;
}

function copy(body: unknown): unknown {
  try {
    return structuredClone(body);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw BadRequest(ID, `message body cannot be copied (functions, symbols and class instances with private state cannot travel): ${why}`);
  }
}

/** A bounded, quoted rendering of user input for error messages. */
export function show(value: unknown): string {
  const text = typeof value === 'string' ? value : String(value);
  return JSON.stringify(text.length > 64 ? `${text.slice(0, 64)}…` : text);
}

/**
 * Runs a subscription's handler for one message whose delivery was counted in
 * `sub.pending`: the count goes down when the handler is done (at once for a synchronous
 * one), and a throw or a rejection goes to `fail`. Shared by the memory and NATS brokers.
 */
export function runHandler(sub: { handler: MessageHandler; pending: number }, message: Message, fail: (err: unknown) => void): void {
  let result: void | Promise<void>;
  try {
    result = sub.handler(message);
  } catch (err) {
    sub.pending--;
    fail(err);
    return;
  }
  if (result === undefined) {
    sub.pending--;
    return;
  }
  // Promise.resolve also absorbs odd thenables; both paths are handled, so a rejecting
  // handler never becomes an unhandled rejection.
  Promise.resolve(result).then(
    () => {
      sub.pending--;
    },
    (err: unknown) => {
      sub.pending--;
      fail(err);
    },
  );
}
