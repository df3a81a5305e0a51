import type { Msg, MsgHdrs, Subscription as NatsSubscription } from '@nats-io/transport-node';
import { BadRequest, PayloadTooLarge, ServiceUnavailable } from '../errors/errors.js';
import { checkPrefix, DEFAULT_PREFIX, redactUrl } from '../engines/profile.js';
import { acquireLink, natsUrlFromEnv, type NatsLink } from '../transport/nats/link.js';
import { brokerSubject, subjectToken } from '../transport/nats/subjects.js';
import type { Broker, Message, MessageHandler, PublishOptions, SubscribeOptions, Subscription } from './broker.js';
import { checkHeader, checkName, checkNamespace, checkTopic, runHandler, show } from './memory.js';

/**
 * The broker on NATS core subjects: the distributed engine of `micro server` (and of any
 * process) in the nats profile. Same semantics as MemoryBroker: fire and forget, fan-out
 * to plain subscribers, one member per queue group (NATS queue groups), NATS wildcards
 * (topics follow NATS's rules already), namespaces apart. A topic of namespace `ns` is the
 * subject `<prefix>.broker.<ns>.<topic>`.
 *
 * What differs from memory: bodies travel as JSON (a Date arrives as its ISO string),
 * delivery happens later than `publish` returns (across the network), and a message
 * published while NATS is away fails with a 503 rather than being queued.
 */

const ID = 'broker';

export interface NatsBrokerOptions {
  /** default MICRO_NATS_URL, else nats://127.0.0.1:4222 */
  url?: string;
  /** first token of every subject (default MICRO_PREFIX, else `micro`) */
  prefix?: string;
  /** ms to keep retrying NATS on first use (default 30,000) */
  maxWait?: number;
  /** told about every handler that throws or rejects (as MemoryBroker) */
  onError?: (err: unknown, message: Message) => void;
  /** deliveries running in one subscription's handler before more are dropped (default 65536) */
  maxPending?: number;
}

export interface NatsBrokerStats {
  published: number;
  delivered: number;
  failed: number;
  dropped: number;
  /** messages on our subjects that were not ours (not JSON): dropped */
  malformed: number;
  subscriptions: number;
}

interface Sub {
  readonly handler: MessageHandler;
  active: boolean;
  pending: number;
  nats: NatsSubscription | undefined;
}

export class NatsBroker implements Broker {
  readonly name = 'nats';
  readonly url: string;
  readonly prefix: string;
  private readonly options: NatsBrokerOptions;
  private readonly maxPending: number;
  private linking: Promise<NatsLink> | undefined;
  private link: NatsLink | undefined;
  private readonly subs = new Set<Sub>();
  private closed = false;
  private readonly counts = { published: 0, delivered: 0, failed: 0, dropped: 0, malformed: 0 };

  constructor(options: NatsBrokerOptions = {}) {
    const maxPending = options.maxPending ?? 65536;
    if (!Number.isInteger(maxPending) || maxPending < 1) throw BadRequest(ID, 'maxPending must be a positive integer');
    this.options = options;
    this.maxPending = maxPending;
    this.url = options.url ?? natsUrlFromEnv();
    this.prefix = checkPrefix(options.prefix ?? (process.env.MICRO_PREFIX || DEFAULT_PREFIX));
  }

  /** Connects now (with backoff), so that a server fails at start rather than at first use. */
  async connect(): Promise<this> {
    await this.nats();
    return this;
  }

  async publish(topic: string, body: unknown, options: PublishOptions = {}): Promise<void> {
    this.ensureOpen();
    checkTopic(topic, false);
    const namespace = checkNamespace(options.namespace);
    const header = checkHeader(options.header);
    const payload = encode(body);
    const link = await this.nats();
    const max = link.maxPayload;
    if (payload.length > max) throw PayloadTooLarge(ID, `message of ${payload.length} bytes exceeds the NATS max_payload of ${max} bytes`);
    let h: MsgHdrs | undefined;
    const keys = Object.keys(header);
    if (keys.length > 0) {
      h = link.lib.headers();
      for (const k of keys) {
        try {
          h.set(k, header[k] as string);
        } catch (err) {
          throw BadRequest(ID, `header ${show(k)} cannot travel on NATS: ${(err as Error).message}`);
        }
      }
    }
    try {
      link.nc.publish(brokerSubject(this.prefix, namespace, topic), payload, h ? { headers: h } : undefined);
    } catch (err) {
      const why = (err as Error).message;
      if (/max_payload/.test(why)) throw PayloadTooLarge(ID, `message with its headers exceeds the NATS max_payload of ${max} bytes`);
      throw ServiceUnavailable(ID, `cannot publish to NATS at ${redactUrl(this.url)}: ${why}`);
    }
    this.counts.published++;
  }

  async subscribe(topic: string, handler: MessageHandler, options: SubscribeOptions = {}): Promise<Subscription> {
    this.ensureOpen();
    if (typeof handler !== 'function') throw BadRequest(ID, 'subscribe needs a handler function');
    checkTopic(topic, true);
    const namespace = checkNamespace(options.namespace);
    const queue = options.queue === undefined ? undefined : checkName('queue', options.queue);
    const link = await this.nats();
    this.ensureOpen();
    const subject = brokerSubject(this.prefix, namespace, topic);
    // the topic of a delivered message: its subject without `<prefix>.broker.<ns>.`
    const cut = subject.length - topic.length;
    const sub: Sub = { handler, active: true, pending: 0, nats: undefined };
    sub.nats = link.nc.subscribe(subject, {
      // queue names may hold what subjects cannot; encoded like a subject token
      queue: queue === undefined ? undefined : subjectToken(queue),
      callback: (_err, msg) => this.deliver(sub, msg, cut),
    });
    this.subs.add(sub);
    // in place at the server before subscribe returns: a publish after it is received
    await link.nc.flush().catch((err: unknown) => {
      throw ServiceUnavailable(ID, `cannot subscribe on NATS at ${redactUrl(this.url)}: ${(err as Error).message}`);
    });
    const remove = async (): Promise<void> => {
      if (!sub.active) return;
      sub.active = false;
      this.subs.delete(sub);
      try {
        sub.nats?.unsubscribe();
      } catch {
        // closed already
      }
    };
    return { topic, queue, unsubscribe: remove };
  }

  /** Ends every subscription and lets go of NATS. Further calls fail with a 503. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const sub of this.subs) {
      sub.active = false;
      try {
        sub.nats?.unsubscribe();
      } catch {
        // closed already
      }
    }
    this.subs.clear();
    const link = this.link ?? (this.linking ? await this.linking.catch(() => undefined) : undefined);
    if (link) {
      await link.nc.flush().catch(() => undefined);
      link.release();
    }
    this.link = undefined;
  }

  stats(): NatsBrokerStats {
    return { ...this.counts, subscriptions: this.subs.size };
  }

  private ensureOpen(): void {
    if (this.closed) throw ServiceUnavailable(ID, 'broker is closed');
  }

  private async nats(): Promise<NatsLink> {
    const link = this.link ?? (await (this.linking ??= this.open()));
    if (link.disconnected || link.closed) throw ServiceUnavailable(ID, `NATS at ${redactUrl(this.url)} is unreachable (reconnecting)`);
    return link;
  }

  private open(): Promise<NatsLink> {
    return acquireLink(this.url, { maxWait: this.options.maxWait }).then(
      (link) => {
        if (this.closed) {
          link.release();
          throw ServiceUnavailable(ID, 'broker is closed');
        }
        this.link = link;
        return link;
      },
      (err: unknown) => {
        this.linking = undefined;
        throw ServiceUnavailable(ID, (err as Error).message);
      },
    );
  }

  private deliver(sub: Sub, msg: Msg, cut: number): void {
    if (!sub.active) return;
    if (sub.pending >= this.maxPending) {
      this.counts.dropped++;
      return;
    }
    let body: unknown;
    try {
      body = msg.data.length === 0 ? undefined : JSON.parse(Buffer.from(msg.data.buffer, msg.data.byteOffset, msg.data.byteLength).toString('utf8'));
    } catch {
      // someone else's message on our subject: not ours to deliver
      this.counts.malformed++;
      return;
    }
    const header: Record<string, string> = {};
    if (msg.headers) for (const k of msg.headers.keys()) header[k] = msg.headers.get(k);
    const message: Message = { topic: msg.subject.slice(cut), header, body };
    this.counts.delivered++;
    sub.pending++;
    runHandler(sub, message, (err) => this.fail(err, message));
  }

  private fail(err: unknown, message: Message): void {
    this.counts.failed++;
    if (!this.options.onError) return;
    try {
      this.options.onError(err, message);
    } catch {
      // the error callback is outside the broker's control; it must not break delivery
    }
  }
}

/** JSON of a body; what JSON would silently drop or cannot hold is refused. */
function encode(body: unknown): Buffer {
  if (body === undefined) return Buffer.alloc(0);
  let text: string;
  try {
    text = JSON.stringify(body, (_k, v: unknown) => {
      if (typeof v === 'function' || typeof v === 'symbol') throw new TypeError(`a ${typeof v} cannot travel`);
      return v;
    });
  } catch (err) {
    throw BadRequest(ID, `message body cannot be encoded as JSON (functions, symbols, BigInts and cycles cannot travel): ${(err as Error).message}`);
  }
  return Buffer.from(text, 'utf8');
}
