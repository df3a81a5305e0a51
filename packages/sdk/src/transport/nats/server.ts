import { randomBytes } from 'node:crypto';
import type { Msg, Subscription } from '@nats-io/transport-node';
import { BadRequest, toMicroError } from '../../errors/errors.js';
import { DEFAULT_PREFIX, checkPrefix } from '../../engines/profile.js';
import type { Logger } from '../../logger/logger.js';
import { decodeFrame, encodeFrame, encodeWindow, FrameType } from '../frame.js';
import { FrameSession, type RpcListener, type RpcServer } from '../server.js';
import { Batch, BATCH_BYTES, BATCH_FRAMES, forEachFrame, isBatch } from './batch.js';
import { acquireLink, natsUrlFromEnv, type NatsLink } from './link.js';
import { cancelSubject, instanceSubject, rpcSubject, subjectToken } from './subjects.js';

/**
 * The server side of RPC over NATS: serves the services mounted on an RpcServer to
 * callers on NATS, beside (or instead of) its socket. See README.md here.
 *
 * ```ts
 * const server = new RpcServer();
 * server.attach(new NatsRpcListener(server, { url, prefix }));
 * ```
 */

export interface NatsTransportOptions {
  /** default MICRO_NATS_URL, else nats://127.0.0.1:4222 */
  url?: string;
  /** first token of every subject (default MICRO_PREFIX, else `micro`) */
  prefix?: string;
  /** ms to keep retrying NATS at start (default 30,000) */
  maxWait?: number;
  /**
   * ms without a frame from a caller with streams open before it is asked whether it is
   * still there (default 15,000); one that is gone has its streams ended
   */
  livenessInterval?: number;
  logger?: Logger;
}

interface Served {
  subject: string;
  subs: Subscription[];
}

export class NatsRpcListener implements RpcListener {
  readonly prefix: string;
  readonly url: string;
  /** where the frames of the streams served here go after their first message */
  readonly instance: string;
  private readonly options: NatsTransportOptions;
  private linking: Promise<NatsLink> | undefined;
  private link: NatsLink | undefined;
  private instanceSub: Subscription | undefined;
  private readonly served = new Map<string, Served>();
  private readonly peers = new Map<string, NatsPeer>();
  private accepting = true;
  private closed = false;
  private sweeper: NodeJS.Timeout | undefined;
  private readonly liveness: number;

  constructor(
    private readonly server: RpcServer,
    options: NatsTransportOptions = {},
  ) {
    this.options = options;
    this.url = options.url ?? natsUrlFromEnv();
    this.prefix = checkPrefix(options.prefix ?? (process.env.MICRO_PREFIX || DEFAULT_PREFIX));
    this.instance = instanceSubject(this.prefix, randomBytes(11).toString('hex'));
    this.liveness = Math.max(10, options.livenessInterval ?? 15_000);
  }

  /**
   * The address every service served here registers: this instance's subject. The
   * selector picks instances and its circuit breakers see which one fails, as over TCP;
   * `serviceAddress` reaches whichever instance the queue group picks.
   */
  get address(): string {
    return `nats:${this.instance}`;
  }

  /** The address of a service as a whole: its queue group, NATS picks the instance. */
  serviceAddress(namespace: string, service: string): string {
    return `nats:${rpcSubject(this.prefix, namespace, service)}`;
  }

  async mount(namespace: string, service: string): Promise<string> {
    if (this.closed) throw BadRequest('micro.transport', 'the NATS listener is closed');
    const link = await this.connect();
    const key = `${namespace}\n${service}`;
    const subject = rpcSubject(this.prefix, namespace, service);
    if (!this.served.has(key)) {
      // one instance of the queue group takes each call; NATS drops a member whose
      // connection closes (even by kill -9) at once, so calls go to the others
      const queue = link.nc.subscribe(subject, { queue: subjectToken(service), callback: (_e, msg) => this.onMessage(msg, true) });
      const cancels = link.nc.subscribe(cancelSubject(subject), { callback: (_e, msg) => this.onMessage(msg, false) });
      this.served.set(key, { subject, subs: [queue, cancels] });
    }
    // the subscriptions are in place at the server before the service registers
    await link.nc.flush();
    return this.address;
  }

  unmount(namespace: string, service: string): void {
    const key = `${namespace}\n${service}`;
    const served = this.served.get(key);
    if (!served) return;
    this.served.delete(key);
    for (const sub of served.subs) unsubscribe(sub);
  }

  /** Leaves the queue groups: new calls go to other instances; streams and calls here go on. */
  async stopAccepting(): Promise<void> {
    this.accepting = false;
    const drains: Promise<void>[] = [];
    for (const served of this.served.values()) {
      const queue = served.subs[0];
      if (queue && !queue.isClosed()) drains.push(queue.drain().catch(() => undefined));
    }
    await Promise.all(drains);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.accepting = false;
    if (this.sweeper) clearInterval(this.sweeper);
    for (const served of this.served.values()) for (const sub of served.subs) unsubscribe(sub);
    this.served.clear();
    if (this.instanceSub) unsubscribe(this.instanceSub);
    for (const peer of this.peers.values()) peer.destroy();
    this.peers.clear();
    const link = this.link ?? (this.linking ? await this.linking.catch(() => undefined) : undefined);
    if (link) {
      // what was published (the last answers) reaches the server before we let go
      await link.nc.flush().catch(() => undefined);
      link.release();
    }
    this.link = undefined;
  }

  private connect(): Promise<NatsLink> {
    this.linking ??= acquireLink(this.url, {
      maxWait: this.options.maxWait,
      onRetry: (message) => this.options.logger?.warn(message),
    }).then(
      (link) => {
        if (this.closed) {
          link.release();
          throw BadRequest('micro.transport', 'the NATS listener is closed');
        }
        this.link = link;
        this.instanceSub = link.nc.subscribe(this.instance, { callback: (_e, msg) => this.onMessage(msg, false, true) });
        this.sweeper = setInterval(() => this.sweep(), this.liveness);
        this.sweeper.unref();
        return link;
      },
      (err: unknown) => {
        this.linking = undefined;
        throw err;
      },
    );
    return this.linking;
  }

  private onMessage(msg: Msg, fromQueue: boolean, fromInstance = false): void {
    const link = this.link;
    if (!link) return;
    const data = msg.data;
    const reply = msg.reply;
    const dot = reply ? reply.lastIndexOf('.') : -1;
    // nothing to answer to (a stray publish): dropped
    if (!reply || dot <= 0) return;
    const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    if (isBatch(buf)) {
      // several frames of one caller (batch.ts); each is handled as if it came alone, with
      // reply subject <inbox>.<its id>, made only when it is needed
      const inbox = reply.slice(0, dot);
      const whole = forEachFrame(buf, (frame) => this.onFrame(link, frame, inbox, undefined, fromQueue, fromInstance, true));
      if (!whole) respond(link, reply, encodeFrame(FrameType.Error, 0, 0, JSON.stringify(BadRequest('micro.transport', 'malformed batch of frames').toJSON())));
      return;
    }
    this.onFrame(link, buf, reply.slice(0, dot), reply, fromQueue, fromInstance, false);
  }

  /**
   * One frame from the caller at `inbox`, to be answered on `reply` (`<inbox>.<id>`; made
   * from the frame's id when not given); `batched` when it came in a batch.
   */
  private onFrame(link: NatsLink, buf: Buffer, inbox: string, reply: string | undefined, fromQueue: boolean, fromInstance: boolean, batched: boolean): void {
    if (buf.length < 6) {
      reply ??= `${inbox}.0`;
      // too short to name a call: answered where it asked, without touching any call
      respond(link, reply, encodeFrame(FrameType.Error, 0, 0, JSON.stringify(BadRequest('micro.transport', `frame of ${buf.length} bytes is shorter than its header`).toJSON())));
      return;
    }
    const type = buf[0] as FrameType;
    if (type === FrameType.Ping) {
      // a caller checks that its call is still held: on the instance subject this instance
      // is alive; on the cancel subject (heard by all), only the instance holding it answers
      const id = buf.readUInt32BE(2);
      if (fromInstance || this.peers.get(inbox)?.serving(id)) respond(link, reply ?? `${inbox}.${id}`, encodeFrame(FrameType.Pong, id, 0, undefined));
      return;
    }
    const opening = type === FrameType.Request || type === FrameType.Open;
    if (opening && !fromQueue && !fromInstance) {
      const id = buf.readUInt32BE(2);
      respond(link, reply ?? `${inbox}.${id}`, encodeFrame(FrameType.Error, id, 0, JSON.stringify(BadRequest('micro.transport', 'calls go to the subject of the service or of an instance').toJSON())));
      return;
    }
    if (opening && (!this.accepting || this.server.isDraining)) {
      this.handOver(link, buf, reply ?? `${inbox}.${buf.readUInt32BE(2)}`);
      return;
    }
    let peer = this.peers.get(inbox);
    if (!peer) {
      // a late frame of a call that is over
      if (!opening) return;
      peer = new NatsPeer(this.server, this, link, inbox);
      this.peers.set(inbox, peer);
    }
    // a caller that batches reads batches: its answers are batched too
    if (batched) peer.batching = true;
    peer.lastHeard = Date.now();
    peer.onFrame(buf);
    if (type === FrameType.Open && peer.serving(buf.readUInt32BE(2))) {
      // tells the caller which instance serves its stream (the reply subject), so that
      // the requests of a client or bidi stream can follow
      peer.ack(buf.readUInt32BE(2));
    }
  }

  /**
   * A call that reached this instance while it stops goes to the service's queue group,
   * with the caller's reply subject: this instance has left the group already (its
   * unsubscribe was sent before this message is handled), so another instance takes it;
   * with none left NATS tells the caller "no responders", a ConnectionError it retries.
   */
  private handOver(link: NatsLink, buf: Buffer, reply: string): void {
    let subject: string;
    try {
      const head = decodeFrame(buf).head!;
      subject = rpcSubject(this.prefix, head.namespace, head.service);
    } catch (err) {
      respond(link, reply, encodeFrame(FrameType.Error, buf.readUInt32BE(2), 0, JSON.stringify(toMicroError(err, 'micro.transport').toJSON())));
      return;
    }
    try {
      link.nc.publish(subject, buf, { reply });
    } catch {
      // NATS is closed: the caller's call fails on its side
    }
  }

  /** Forgets idle callers, and asks those with streams open and silent whether they are there. */
  private sweep(): void {
    const link = this.link;
    if (!link || link.disconnected) return;
    const now = Date.now();
    for (const [inbox, peer] of this.peers) {
      if (now - peer.lastHeard < this.liveness) continue;
      if (peer.activeCalls === 0) {
        this.peers.delete(inbox);
        continue;
      }
      if (peer.probing) continue;
      peer.probing = true;
      link.nc.request(`${inbox}.0`, encodeFrame(FrameType.Ping, 0, 0, undefined).subarray(4), { timeout: this.liveness }).then(
        () => {
          peer.probing = false;
          peer.lastHeard = Date.now();
        },
        (err: unknown) => {
          peer.probing = false;
          // no responders: the caller's connection is gone, its streams end here too
          if (isNoResponders(err)) {
            this.peers.delete(inbox);
            peer.destroy();
          }
        },
      );
    }
  }
}

/** The calls of one calling connection (one inbox), served as a TCP connection's are. */
class NatsPeer extends FrameSession {
  lastHeard = Date.now();
  probing = false;
  /** the caller sent a batch: it reads them, and gets its answers batched too */
  batching = false;
  private readonly opts: { reply: string };
  /** frames to send at the end of this turn, when batching */
  private readonly out: Batch;
  private flushing = false;

  constructor(
    server: RpcServer,
    listener: NatsRpcListener,
    private readonly link: NatsLink,
    private readonly inbox: string,
  ) {
    super(server, Math.min(server.maxFrame, link.maxPayload));
    this.opts = { reply: listener.instance };
    this.out = new Batch(`${inbox}.0`);
  }

  serving(id: number): boolean {
    return this.calls.has(id);
  }

  ack(id: number): void {
    this.send(encodeWindow(id, 0));
  }

  protected send(buf: Buffer): void {
    if (this.closed) return;
    if (!this.batching) {
      this.publishOne(buf);
      return;
    }
    const out = this.out;
    const limit = Math.min(BATCH_BYTES, this.link.maxPayload);
    if (buf.length >= limit) {
      // large frames go alone, after what was queued before them
      this.flush();
      this.publishOne(buf);
      return;
    }
    if (out.bytes + buf.length > limit) this.flush();
    out.push(buf, 0);
    if (out.frames.length >= BATCH_FRAMES) {
      // the caller starts on these while the rest of the turn is answered
      this.flush();
      return;
    }
    if (!this.flushing) {
      this.flushing = true;
      setImmediate(this.onTick);
    }
  }

  private readonly onTick = (): void => {
    this.flushing = false;
    this.flush();
  };

  private flush(): void {
    const out = this.out;
    if (out.frames.length === 0) return;
    const { frames, bytes } = out.take();
    if (this.closed) return;
    if (frames.length === 1) {
      this.publishOne(frames[0] as Buffer);
      return;
    }
    try {
      // every frame from here comes from this instance: the reply subject names it, for
      // the frames of streams
      this.link.nc.publish(out.subject, Buffer.concat(frames, bytes), this.opts);
    } catch {
      // NATS is closed: the callers' calls fail on their side (timeout or lost connection)
    }
  }

  /** One frame alone, to `<inbox>.<its id>`. */
  private publishOne(buf: Buffer): void {
    const type = buf[4] as FrameType;
    const subject = `${this.inbox}.${buf.readUInt32BE(6)}`;
    try {
      // frames of a stream name this instance, where the caller sends the rest of it
      if (type === FrameType.Data || type === FrameType.Window || type === FrameType.End) this.link.nc.publish(subject, buf.subarray(4), this.opts);
      else this.link.nc.publish(subject, buf.subarray(4));
    } catch {
      // NATS is closed: the caller's call fails on its side (timeout or lost connection)
    }
  }

  destroy(): void {
    this.closed = true;
    this.loseCalls();
  }
}

function respond(link: NatsLink, subject: string, frame: Buffer): void {
  try {
    link.nc.publish(subject, frame.subarray(4));
  } catch {
    // closed: nobody to tell
  }
}

function unsubscribe(sub: Subscription): void {
  try {
    sub.unsubscribe();
  } catch {
    // the connection is closed already
  }
}

function isNoResponders(err: unknown): boolean {
  const e = err as { isNoResponders?: () => boolean; cause?: unknown; name?: string };
  if (typeof e?.isNoResponders === 'function' && e.isNoResponders()) return true;
  return (e?.cause as { name?: string } | undefined)?.name === 'NoRespondersError' || e?.name === 'NoRespondersError';
}
