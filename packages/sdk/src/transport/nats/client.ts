import type { Msg, Subscription } from '@nats-io/transport-node';
import { PayloadTooLarge } from '../../errors/errors.js';
import { redactUrl } from '../../engines/profile.js';
import { CallTable } from '../table.js';
import { ClientConnection, ConnectionError, registerScheme, type PoolOptions } from '../client.js';
import { DEFAULT_MAX_FRAME, encodeFrame, FrameType } from '../frame.js';
import { Batch, BATCH_BYTES, BATCH_FRAMES, forEachFrame, isBatch } from './batch.js';
import { acquireLink, natsUrlFromEnv, newInbox, type LinkEvent, type NatsLink } from './link.js';
import { cancelSubject, isInstanceSubject, NATS_SCHEME, parseNatsAddress } from './subjects.js';

/**
 * The client side of RPC over NATS: a ClientConnection for a `nats:<subject>` address, so
 * that the Client, its retries and the selector work as over TCP. See README.md here for
 * the protocol; in short, the frames of frame.ts are the NATS payloads:
 *
 * - a request or stream opening goes to `<subject>`: an instance's own subject (what
 *   services register) or a service's queue group (one instance takes it), with reply
 *   subject `<inbox>.<call id>`; NATS says "no responders" when nobody listens, and the
 *   call fails with a ConnectionError that was not sent (retried elsewhere);
 * - every answer comes to `<inbox>.<call id>`; those of a stream carry the subject of the
 *   instance serving it as their reply subject, where the rest of the stream's frames go;
 * - a unary call sent to a queue group is cancelled on `<subject>.cancel`, heard by every
 *   instance of the service;
 * - the frames written to one subject in one turn of the event loop go as one message
 *   (batch.ts), with reply subject `<inbox>.<id>-<id>-…` naming their calls.
 */
export class NatsClientConnection extends ClientConnection {
  private readonly subject: string;
  /** the address names one instance (what services register), not a queue group */
  private readonly direct: boolean;
  private readonly url: string;
  private link: NatsLink | undefined;
  private sub: Subscription | undefined;
  private inbox = '';
  private offLink: (() => void) | undefined;
  /** frames written before NATS was reached */
  private queued: Buffer[] = [];
  /** whether this connection holds a reference on the link (calls in flight) */
  private holding = false;
  private wantRef = true;
  /** the instance serving each stream, once it answered */
  private readonly instances = new CallTable<string>();
  /** stream frames waiting for the instance to be known */
  private readonly early = new CallTable<Buffer[]>();
  /** when each call was sent, for the probe of calls that wait long */
  private readonly sentAt = new CallTable<number>();
  private readonly probing = new Set<number>();
  private prober: NodeJS.Timeout | undefined;
  private readonly probeInterval: number;
  /** the call that just ended and its instance: its CANCEL frame is written right after */
  private endedId = 0;
  private endedInstance: string | undefined;
  /** frames to publish at the end of this turn, by subject */
  private readonly out = new Map<string, Batch>();
  private flushing = false;

  constructor(address: string, options: PoolOptions, onGone: (conn: ClientConnection) => void) {
    super(address, options.maxFrame ?? DEFAULT_MAX_FRAME, onGone);
    this.subject = parseNatsAddress(address);
    this.direct = isInstanceSubject(this.subject);
    this.url = options.natsUrl ?? natsUrlFromEnv();
    this.probeInterval = Math.max(10, options.natsProbeInterval ?? 2_000);
    // a caller does not wait for NATS longer than for a TCP connection: one attempt, and at
    // most connectTimeout for a connection that another user in this process is opening
    const wait = options.connectTimeout ?? 5_000;
    acquireLink(this.url, { maxWait: 0, wait }).then(
      (link) => this.up(link),
      (err: unknown) => this.fail(err instanceof Error ? err.message : String(err)),
    );
  }

  private up(link: NatsLink): void {
    this.holding = true;
    if (this.closed) {
      this.teardown();
      return;
    }
    if (link.disconnected || link.closed) {
      this.link = link;
      this.fail(`NATS at ${redactUrl(this.url)} is unreachable (reconnecting)`);
      return;
    }
    this.link = link;
    this.maxFrame = Math.min(this.maxFrame, link.maxPayload);
    this.inbox = newInbox();
    try {
      this.sub = link.nc.subscribe(`${this.inbox}.*`, { callback: (_err, msg) => this.onMessage(msg) });
    } catch (err) {
      this.fail(`cannot subscribe on NATS at ${redactUrl(this.url)}: ${(err as Error).message}`);
      return;
    }
    this.offLink = link.on((event) => this.onLink(event));
    this.connected = true;
    if (!this.wantRef) this.unref();
    const queued = this.queued;
    this.queued = [];
    for (const buf of queued) this.route(buf);
  }

  private onLink(event: LinkEvent): void {
    // answers to the calls in flight may be lost with the connection: they fail (as sent),
    // and calls made while NATS is away fail at once (not sent) until it is back
    if (event === 'disconnect') this.fail(`lost the connection to NATS at ${redactUrl(this.url)}`);
    else if (event === 'close') this.fail(`the connection to NATS at ${redactUrl(this.url)} closed`);
  }

  protected send(buf: Buffer): void {
    if (this.closed) return;
    if (!this.link) {
      this.queued.push(buf);
      return;
    }
    this.route(buf);
  }

  private route(buf: Buffer): void {
    const type = buf[4] as FrameType;
    const id = buf.readUInt32BE(6);
    if (type === FrameType.Request || type === FrameType.Open) {
      const max = this.link!.maxPayload;
      if (buf.length - 4 > max) {
        this.failOne(
          id,
          PayloadTooLarge(this.callService(id) ?? 'micro.transport', `request of ${buf.length - 4} bytes exceeds the NATS max_payload of ${max} bytes (raise max_payload in the NATS server's configuration)`),
          false,
        );
        return;
      }
      this.post(id, this.subject, buf);
      this.sentAt.set(id, Date.now());
      if (!this.prober) {
        this.prober = setInterval(() => this.probe(), this.probeInterval);
        // the calls keep the process alive, not their probe
        this.prober.unref();
      }
      return;
    }
    const instance = this.direct ? this.subject : (this.instances.get(id) ?? (id === this.endedId ? this.endedInstance : undefined));
    if (type === FrameType.Cancel) {
      this.post(id, instance ?? cancelSubject(this.subject), buf);
      return;
    }
    if (instance) {
      this.post(id, instance, buf);
      return;
    }
    // the stream's first answer, which names its instance, has not come yet
    if (!this.hasCall(id)) return;
    const list = this.early.get(id);
    if (list) list.push(buf);
    else this.early.set(id, [buf]);
  }

  /** Queues a frame (length-prefixed) of call `id` for `subject`, sent at the end of this turn. */
  private post(id: number, subject: string, buf: Buffer): void {
    const limit = Math.min(BATCH_BYTES, this.link!.maxPayload);
    let batch = this.out.get(subject);
    if (buf.length >= limit) {
      // large frames go alone, after what was queued for the subject before them
      if (batch && batch.frames.length > 0) this.flushBatch(batch);
      this.publish([id], subject, buf.subarray(4), `${this.inbox}.${id}`);
      return;
    }
    if (!batch) {
      batch = new Batch(subject);
      this.out.set(subject, batch);
    } else if (batch.bytes + buf.length > limit) {
      this.flushBatch(batch);
    }
    batch.push(buf, id);
    if (batch.frames.length >= BATCH_FRAMES) {
      // the instance starts on these while the rest of the turn is encoded
      this.flushBatch(batch);
      return;
    }
    if (!this.flushing) {
      this.flushing = true;
      setImmediate(this.flushAll);
    }
  }

  private readonly flushAll = (): void => {
    this.flushing = false;
    if (this.closed || !this.link) return;
    for (const batch of this.out.values()) if (batch.frames.length > 0) this.flushBatch(batch);
    this.out.clear();
  };

  private flushBatch(batch: Batch): void {
    const { frames, ids, bytes } = batch.take();
    if (frames.length === 1) {
      const frame = frames[0] as Buffer;
      this.publish(ids, batch.subject, frame.subarray(4), `${this.inbox}.${ids[0]}`);
      return;
    }
    // the reply subject names every call in the batch: NATS's "no responders" comes back
    // on it, and then none of them was delivered
    this.publish(ids, batch.subject, Buffer.concat(frames, bytes), `${this.inbox}.${ids.join('-')}`);
  }

  private publish(ids: number[], subject: string, payload: Buffer, reply: string): void {
    try {
      this.link!.nc.publish(subject, payload, { reply });
    } catch (err) {
      // calls already over (a CANCEL's) are not in flight any more: failOne skips them
      for (const id of ids) this.failOne(id, new ConnectionError(this.callService(id) ?? 'micro.transport', `cannot publish to NATS: ${(err as Error).message}`, false), false);
    }
  }

  private onMessage(msg: Msg): void {
    const data = msg.data;
    if (data.length === 0) {
      // a status message: 503 is NATS saying that no instance listens on the subject; the
      // subject names the call, or every call of a batch
      if (msg.headers?.code === 503) {
        for (const token of msg.subject.slice(this.inbox.length + 1).split('-')) {
          const id = Number(token);
          if (!this.hasCall(id)) continue;
          const service = this.callService(id) ?? 'micro.transport';
          this.failOne(id, new ConnectionError(service, `no instance of ${service} is listening on NATS subject ${this.subject}`, false), false);
        }
      }
      return;
    }
    const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    if (isBatch(buf)) {
      // frames of several calls from one instance: those of a stream learn the instance
      // from the reply subject, as when they come alone
      const reply = msg.reply;
      const whole = forEachFrame(buf, (frame) => {
        const type = frame[0] as FrameType;
        if (reply && (type === FrameType.Data || type === FrameType.Window || type === FrameType.End)) this.learnInstance(frame.readUInt32BE(2), reply);
        this.onFrame(frame);
      });
      if (!whole && !this.closed) this.fail('protocol error: malformed batch of frames', true);
      return;
    }
    const id = Number(msg.subject.slice(this.inbox.length + 1));
    if (buf.length >= 6) {
      const type = buf[0] as FrameType;
      if (type === FrameType.Ping) {
        // the instance checks that this caller is still there
        if (msg.reply) msg.respond(encodeFrame(FrameType.Pong, buf.readUInt32BE(2), 0, undefined).subarray(4));
        return;
      }
      if (msg.reply) this.learnInstance(id, msg.reply);
    }
    this.onFrame(buf);
  }

  /** The instance serving stream `id` answered from `instance`: the rest of the stream goes there. */
  private learnInstance(id: number, instance: string): void {
    if (this.instances.has(id) || !this.hasCall(id)) return;
    this.instances.set(id, instance);
    const early = this.early.get(id);
    if (early) {
      this.early.delete(id);
      for (const b of early) this.post(id, instance, b);
    }
  }

  /**
   * Asks about every call that has waited longer than the probe interval. A stream's
   * instance is known and is asked directly: "no responders" means it is gone. A unary
   * call's instance is not known, so the question goes to every instance on the cancel
   * subject and the one holding the call answers; silence means no instance has it any
   * more (it died with it). Either way the call fails with a ConnectionError that was
   * sent, which the client retries when the endpoint is idempotent.
   */
  private probe(): void {
    const link = this.link;
    if (this.sentAt.size === 0) {
      clearInterval(this.prober);
      this.prober = undefined;
      return;
    }
    if (!link || link.disconnected) return;
    const now = Date.now();
    for (const [id, at] of this.sentAt.entries()) {
      if (now - at < this.probeInterval || this.probing.has(id)) continue;
      this.probing.add(id);
      const instance = this.direct ? this.subject : this.instances.get(id);
      const ping = encodeFrame(FrameType.Ping, id, 0, undefined).subarray(4);
      link.nc.request(instance ?? cancelSubject(this.subject), ping, { timeout: this.probeInterval }).then(
        () => {
          this.probing.delete(id);
          // still held: ask again an interval later
          if (this.sentAt.has(id)) this.sentAt.set(id, Date.now());
        },
        (err: unknown) => {
          this.probing.delete(id);
          if (!this.sentAt.has(id) || link.disconnected || this.closed) return;
          const service = this.callService(id) ?? 'micro.transport';
          const why = isNoResponders(err) ? 'its instance is gone' : 'no instance holds it any more';
          this.failOne(id, new ConnectionError(service, `call to ${service} over NATS was lost: ${why}`, true), false);
        },
      );
    }
  }

  protected override callEnded(id: number): void {
    this.sentAt.delete(id);
    this.endedId = id;
    this.endedInstance = this.instances.get(id);
    this.instances.delete(id);
    this.early.delete(id);
  }

  protected ref(): void {
    this.wantRef = true;
    if (this.link && !this.holding && !this.closed) {
      this.holding = true;
      this.link.retain();
    }
  }

  protected unref(): void {
    this.wantRef = false;
    if (this.link && this.holding) {
      this.holding = false;
      this.link.release();
    }
  }

  protected teardown(): void {
    if (this.prober) clearInterval(this.prober);
    this.prober = undefined;
    this.out.clear();
    this.offLink?.();
    this.offLink = undefined;
    if (this.sub) {
      try {
        this.sub.unsubscribe();
      } catch {
        // the connection is closed already
      }
      this.sub = undefined;
    }
    this.queued = [];
    if (this.holding) {
      this.holding = false;
      this.link?.release();
    }
  }

  protected override fail(reason: string, destroy = false): void {
    if (this.closed) return;
    super.fail(reason, destroy);
    // nothing more will come on this inbox
    this.teardown();
  }
}

registerScheme(NATS_SCHEME, (address, options, onGone) => new NatsClientConnection(address, options, onGone));

function isNoResponders(err: unknown): boolean {
  const e = err as { isNoResponders?: () => boolean; cause?: unknown; name?: string };
  if (typeof e?.isNoResponders === 'function' && e.isNoResponders()) return true;
  return (e?.cause as { name?: string } | undefined)?.name === 'NoRespondersError' || e?.name === 'NoRespondersError';
}
