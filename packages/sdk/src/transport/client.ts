import { connect, type Socket } from 'node:net';
import { BadGateway, Cancelled, fromJSON, MicroError, PayloadTooLarge, Timeout } from '../errors/errors.js';
import type { Codec } from '../codec/codec.js';
import type { StreamKind } from '../registry/registry.js';
import { cancelDeadline, scheduleDeadline, type DeadlineEntry } from '../util/deadlines.js';
import { parseAddress } from './address.js';
import { decodeFrame, DEFAULT_MAX_FRAME, encodeFrame, encodeRequest, encodeWindow, FrameReader, FrameType, PREFACE, type Frame } from './frame.js';
import { Inbox, Outbox } from './flow.js';
import { FrameWriter } from './writer.js';
import { CallTable } from './table.js';

/**
 * The client side of the wire protocol: connections that multiplex many calls, and a
 * pool that keeps them per address.
 */

/**
 * A call could not reach the service, or the connection broke before it answered.
 * `sent` tells whether the request may have reached the server: the client retries an
 * unsent call on another node freely, a sent one only when the endpoint is idempotent.
 */
export class ConnectionError extends MicroError {
  constructor(
    id: string,
    detail: string,
    readonly sent: boolean,
  ) {
    super(id, 503, detail);
    this.name = 'ConnectionError';
  }
}

export interface OutboundCall {
  kind: StreamKind;
  route: Buffer;
  service: string;
  /** milliseconds left, 0 for none */
  timeout: number;
  /** JSON of {md, tp}, or undefined */
  meta: string | undefined;
  codec: Codec;
  signal: AbortSignal | undefined;
}

interface Pending extends DeadlineEntry {
  service: string;
  codec: Codec;
  resolve(value: unknown): void;
  reject(err: unknown): void;
  /** for streams */
  inbox: Inbox | undefined;
  outbox: Outbox | undefined;
  onAbort: (() => void) | undefined;
  signal: AbortSignal | undefined;
  timeout: number;
}

const NO_DEADLINE = 0;

export interface ConnectionOptions {
  maxFrame?: number;
  /** milliseconds to wait for a TCP connection (default 5,000) */
  connectTimeout?: number;
}

/**
 * One multiplexed connection to a node, as the Client sees it: the calls in flight by id,
 * their deadlines, cancellation and stream flow control. How frames travel is left to
 * the subclass: TcpClientConnection (TCP and Unix sockets) and, for `nats:` addresses,
 * NatsClientConnection (transport/nats/client.ts). [NATS transport, issue 6: split from
 * the TCP connection so both share this logic.]
 */
export abstract class ClientConnection {
  readonly address: string;
  private readonly pending = new CallTable<Pending>();
  /** largest frame sent or accepted; a transport may lower it once connected */
  protected maxFrame: number;
  private nextId = 1;
  /** whether the transport was ever up: decides whether a lost call may have been sent */
  protected connected = false;
  private referenced = true;
  /** the server asked us to go away (it drains): no new calls here */
  draining = false;
  closed = false;
  lastUsed = Date.now();
  protected readonly onGone: (conn: ClientConnection) => void;

  constructor(address: string, maxFrame: number, onGone: (conn: ClientConnection) => void) {
    this.address = address;
    this.maxFrame = maxFrame;
    this.onGone = onGone;
  }

  /** Writes one length-prefixed frame (see frame.ts). */
  protected abstract send(buf: Buffer): void;
  /** Calls are in flight: keep the process alive. */
  protected abstract ref(): void;
  /** No call in flight: an idle connection must not keep the process alive. */
  protected abstract unref(): void;
  /** Releases the transport (the calls have been failed already). */
  protected abstract teardown(): void;

  get inflight(): number {
    return this.pending.size;
  }

  get usable(): boolean {
    return !this.closed && !this.draining;
  }

  /** One request, one response. */
  unary(call: OutboundCall, body: string | Uint8Array): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const id = this.register(call, resolve, reject, undefined, undefined);
      if (id === 0) return;
      this.send(encodeRequest(FrameType.Request, id, call.codec.id, call.kind, call.timeout, call.route, call.meta, body));
    });
  }

  /**
   * Opens a stream. `first` is the request of a server stream (sent in the open frame).
   * Returns the inbox of responses and an outbox-backed sender for requests.
   */
  openStream(call: OutboundCall, first: string | Uint8Array | undefined): StreamHandle {
    let settle!: { resolve(v: unknown): void; reject(e: unknown): void };
    const result = new Promise<unknown>((resolve, reject) => (settle = { resolve, reject }));
    // the result promise of a client stream may never be awaited when the stream fails
    result.catch(() => undefined);
    const id = this.nextCallId();
    const inbox = new Inbox(
      this.maxFrame,
      (bytes) => this.send(encodeWindow(id, bytes)),
      () => this.cancel(id),
    );
    const outbox = new Outbox();
    const pending = this.track(id, call, settle.resolve, settle.reject, inbox, outbox);
    if (!pending) {
      return new StreamHandle(this, id, inbox, outbox, result, call.codec);
    }
    this.send(encodeRequest(FrameType.Open, id, call.codec.id, call.kind, call.timeout, call.route, call.meta, first));
    return new StreamHandle(this, id, inbox, outbox, result, call.codec);
  }

  /** @internal sends one streamed request, after waiting for credit */
  async sendData(id: number, codec: Codec, value: unknown): Promise<void> {
    const p = this.pending.get(id);
    if (!p) throw Cancelled('micro.transport', 'stream is closed');
    const body = codec.id === 0 ? (value === undefined ? 'null' : JSON.stringify(value)) : codec.encode(value);
    const size = typeof body === 'string' ? Buffer.byteLength(body) : body.length;
    if (size + 6 > this.maxFrame) throw PayloadTooLarge(p.service, `stream message of ${size} bytes exceeds the frame limit of ${this.maxFrame} bytes`);
    const wait = p.outbox!.reserve(size);
    if (wait) await wait;
    if (!this.pending.has(id)) throw Cancelled('micro.transport', 'stream is closed');
    this.send(encodeFrame(FrameType.Data, id, codec.id, body));
  }

  /** @internal */
  sendEnd(id: number): void {
    if (this.pending.has(id)) this.send(encodeFrame(FrameType.End, id, 0, undefined));
  }

  /** Cancels a call or stream: the server stops working on it. */
  cancel(id: number, err: MicroError = Cancelled('micro.transport', 'cancelled')): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.settle(id, p);
    this.send(encodeFrame(FrameType.Cancel, id, 0, undefined));
    p.inbox?.fail(err);
    p.outbox?.close(err);
    p.reject(err);
  }

  private nextCallId(): number {
    const id = this.nextId;
    this.nextId = this.nextId >= 0xfffffffe ? 1 : this.nextId + 1;
    return id;
  }

  private register(
    call: OutboundCall,
    resolve: (v: unknown) => void,
    reject: (e: unknown) => void,
    inbox: Inbox | undefined,
    outbox: Outbox | undefined,
  ): number {
    const id = this.nextCallId();
    return this.track(id, call, resolve, reject, inbox, outbox) ? id : 0;
  }

  private track(
    id: number,
    call: OutboundCall,
    resolve: (v: unknown) => void,
    reject: (e: unknown) => void,
    inbox: Inbox | undefined,
    outbox: Outbox | undefined,
  ): Pending | undefined {
    if (this.closed) {
      const err = new ConnectionError(call.service, `cannot reach ${this.address}: connection closed`, false);
      inbox?.fail(err);
      reject(err);
      return undefined;
    }
    const pending: Pending = {
      service: call.service,
      codec: call.codec,
      resolve,
      reject,
      inbox,
      outbox,
      onAbort: undefined,
      signal: call.signal,
      timeout: call.timeout,
      at: call.timeout > 0 ? Date.now() + call.timeout : NO_DEADLINE,
      onExpire: () => this.cancel(id, Timeout(call.service, `call to ${call.service} timed out after ${call.timeout} ms`)),
    };
    if (call.signal) {
      if (call.signal.aborted) {
        const err = Cancelled(call.service, 'cancelled by the caller');
        inbox?.fail(err);
        reject(err);
        return undefined;
      }
      pending.onAbort = () => this.cancel(id, Cancelled(call.service, 'cancelled by the caller'));
      call.signal.addEventListener('abort', pending.onAbort, { once: true });
    }
    if (pending.at !== NO_DEADLINE) scheduleDeadline(pending);
    this.pending.set(id, pending);
    if (!this.referenced) {
      this.referenced = true;
      this.ref();
    }
    this.lastUsed = Date.now();
    return pending;
  }

  private settle(id: number, p: Pending): void {
    this.pending.delete(id);
    this.callEnded(id);
    if (p.at !== NO_DEADLINE) cancelDeadline(p);
    if (p.onAbort) p.signal?.removeEventListener('abort', p.onAbort);
    this.unrefIfIdle();
  }

  /** An idle connection must not keep the process alive. */
  protected unrefIfIdle(): void {
    if (this.pending.size === 0 && this.referenced) {
      this.referenced = false;
      this.unref();
    }
  }

  /** Told when a call is over (answered, failed or cancelled). */
  protected callEnded(_id: number): void {}

  /** Whether call `id` is in flight. */
  protected hasCall(id: number): boolean {
    return this.pending.has(id);
  }

  /** The service called by call `id`, when it is in flight. */
  protected callService(id: number): string | undefined {
    return this.pending.get(id)?.service;
  }

  /** Handles one frame (without its length prefix) from the server. */
  protected onFrame(buf: Buffer): void {
    let frame: Frame;
    try {
      frame = decodeFrame(buf);
    } catch (err) {
      // a server that speaks garbage is not to be trusted with the other calls either
      this.fail(`protocol error: ${(err as Error).message}`, true);
      return;
    }
    const p = this.pending.get(frame.id);
    switch (frame.type) {
      case FrameType.Response: {
        if (!p) return;
        this.settle(frame.id, p);
        let value: unknown;
        try {
          value = p.codec.decode(frame.body);
        } catch (err) {
          p.reject(BadGateway(p.service, `malformed response: ${(err as Error).message}`));
          return;
        }
        p.inbox?.end();
        p.outbox?.close();
        p.resolve(value);
        return;
      }
      case FrameType.Error: {
        if (!p) return;
        this.settle(frame.id, p);
        let err: MicroError;
        try {
          err = fromJSON(JSON.parse(frame.body.toString('utf8')), p.service);
        } catch {
          err = BadGateway(p.service, 'malformed error response');
        }
        p.inbox?.fail(err);
        p.outbox?.close(err);
        p.reject(err);
        return;
      }
      case FrameType.Data: {
        if (!p?.inbox) return;
        let value: unknown;
        try {
          value = p.codec.decode(frame.body);
        } catch (err) {
          this.cancel(frame.id, BadGateway(p.service, `malformed stream message: ${(err as Error).message}`));
          return;
        }
        if (!p.inbox.deliver(value, frame.body.length)) this.cancel(frame.id, BadGateway(p.service, 'server ignored stream flow control'));
        return;
      }
      case FrameType.End:
        if (!p) return;
        this.settle(frame.id, p);
        p.inbox?.end();
        p.outbox?.close();
        p.resolve(undefined);
        return;
      case FrameType.Window:
        p?.outbox?.addCredit(frame.credit);
        return;
      case FrameType.GoAway:
        this.draining = true;
        this.onGone(this);
        return;
      case FrameType.Ping:
        this.send(encodeFrame(FrameType.Pong, frame.id, 0, undefined));
        return;
      default:
        return;
    }
  }

  /** Fails one call; `notify` false when the server never saw it (nothing to cancel there). */
  protected failOne(id: number, err: MicroError, notify = true): void {
    const p = this.pending.get(id);
    if (!p) return;
    if (notify) {
      this.cancel(id, err);
      return;
    }
    this.settle(id, p);
    p.inbox?.fail(err);
    p.outbox?.close(err);
    p.reject(err);
  }

  /** The connection is gone: every call on it fails with a ConnectionError. */
  protected fail(reason: string, destroy = false): void {
    if (this.closed) return;
    this.closed = true;
    if (destroy) this.teardown();
    this.onGone(this);
    const calls = this.pending.drain();
    for (const [id, p] of calls) {
      this.callEnded(id);
      if (p.at !== NO_DEADLINE) cancelDeadline(p);
      if (p.onAbort) p.signal?.removeEventListener('abort', p.onAbort);
      const err = this.connected
        ? new ConnectionError(p.service, `connection to ${this.address} lost (${reason})`, true)
        : new ConnectionError(p.service, `cannot reach ${this.address} (${reason})`, false);
      p.inbox?.fail(err);
      p.outbox?.close(err);
      p.reject(err);
    }
  }

  close(): void {
    this.fail('closed by the client');
    this.teardown();
  }
}

/** A connection over TCP or a Unix socket, frames length-prefixed (see frame.ts). */
export class TcpClientConnection extends ClientConnection {
  private readonly socket: Socket;
  private readonly reader: FrameReader;
  private readonly writer: FrameWriter;

  constructor(address: string, options: ConnectionOptions, onGone: (conn: ClientConnection) => void) {
    super(address, options.maxFrame ?? DEFAULT_MAX_FRAME, onGone);
    const parsed = parseAddress(address);
    this.socket = parsed.kind === 'unix' ? connect(parsed.path) : connect({ host: parsed.host, port: parsed.port, noDelay: true });
    // a peer that vanished without closing (power loss, cable) is noticed by TCP keep-alive,
    // so a stream without a deadline does not wait on it for ever
    this.socket.setKeepAlive(true, 15_000);
    this.writer = new FrameWriter(this.socket);
    this.reader = new FrameReader(
      this.maxFrame,
      (buf) => this.onFrame(buf),
      (_type, id, length) => this.failOne(id, PayloadTooLarge('micro.transport', `response frame of ${length} bytes exceeds the limit of ${this.maxFrame} bytes`)),
    );
    const connectTimer = setTimeout(() => {
      if (!this.connected) this.socket.destroy(new Error(`connect timeout after ${options.connectTimeout ?? 5000} ms`));
    }, options.connectTimeout ?? 5000);
    connectTimer.unref();
    this.socket.once('connect', () => {
      this.connected = true;
      clearTimeout(connectTimer);
    });
    this.socket.on('data', (chunk: Buffer) => this.reader.push(chunk));
    this.socket.on('error', (err: NodeJS.ErrnoException) => {
      this.fail(err.code ?? err.message);
    });
    this.socket.on('close', () => this.fail('connection closed'));
    this.socket.write(PREFACE);
    this.unrefIfIdle();
  }

  protected send(buf: Buffer): void {
    if (this.closed) return;
    this.writer.write(buf);
  }

  protected ref(): void {
    this.socket.ref();
  }

  protected unref(): void {
    this.socket.unref();
  }

  protected teardown(): void {
    this.socket.destroy();
  }
}

/** A client's view of one open stream on a connection. */
export class StreamHandle {
  constructor(
    private readonly conn: Pick<ClientConnection, 'sendData' | 'sendEnd' | 'cancel'>,
    readonly id: number,
    readonly responses: Inbox,
    private readonly outbox: Outbox,
    /** resolves with the single response of a client stream (or undefined at END) */
    readonly result: Promise<unknown>,
    private readonly codec: Codec,
  ) {}

  send(value: unknown): Promise<void> {
    return this.conn.sendData(this.id, this.codec, value);
  }

  end(): void {
    this.conn.sendEnd(this.id);
  }

  cancel(err?: MicroError): void {
    this.conn.cancel(this.id, err);
    this.outbox.close(err);
  }
}

/**
 * Makes connections for addresses of another scheme, registered by their transport:
 * `nats:` by transport/nats/client.ts. [NATS transport, issue 6]
 */
export type ConnectionFactory = (address: string, options: PoolOptions, onGone: (conn: ClientConnection) => void) => ClientConnection;
const schemes = new Map<string, ConnectionFactory>();

/** Registers the transport of addresses starting with `scheme` (e.g. `nats:`). */
export function registerScheme(scheme: string, factory: ConnectionFactory): void {
  schemes.set(scheme, factory);
}

export interface PoolOptions extends ConnectionOptions {
  /** NATS server for `nats:` addresses (default MICRO_NATS_URL, nats://127.0.0.1:4222) */
  natsUrl?: string;
  /**
   * ms a call over NATS waits for an answer before the caller checks that an instance still
   * has it (default 2,000); one lost with its instance (kill -9) fails as a ConnectionError
   */
  natsProbeInterval?: number;
  /** connections per address (default 1: every call is multiplexed on it) */
  size?: number;
  /** close connections unused for this long, ms (default 60,000) */
  idleTimeout?: number;
}

/** Connections per address, opened on first use and reused by every call. */
export class ConnectionPool {
  private readonly conns = new Map<string, ClientConnection[]>();
  private readonly rr = new Map<string, number>();
  private readonly size: number;
  private readonly options: PoolOptions;
  private sweeper: NodeJS.Timeout | undefined;

  constructor(options: PoolOptions = {}) {
    this.options = options;
    this.size = Math.max(1, options.size ?? 1);
  }

  get(address: string): ClientConnection {
    let list = this.conns.get(address);
    if (list) {
      if (list.length >= this.size) {
        const n = (this.rr.get(address) ?? 0) + 1;
        this.rr.set(address, n);
        const conn = list[n % list.length] as ClientConnection;
        if (conn.usable) return conn;
        const usable = list.find((c) => c.usable);
        if (usable) return usable;
      }
    } else {
      list = [];
      this.conns.set(address, list);
    }
    const colon = address.indexOf(':');
    const factory = colon > 0 ? schemes.get(address.slice(0, colon + 1)) : undefined;
    const onGone = (c: ClientConnection): void => this.remove(c);
    const conn = factory ? factory(address, this.options, onGone) : new TcpClientConnection(address, this.options, onGone);
    list.push(conn);
    this.startSweeper();
    return conn;
  }

  private remove(conn: ClientConnection): void {
    const list = this.conns.get(conn.address);
    if (!list) return;
    const i = list.indexOf(conn);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) this.conns.delete(conn.address);
    // a draining connection finishes its calls and is closed when idle
    if (conn.draining && !conn.closed) {
      const check = setInterval(() => {
        if (conn.inflight === 0 || conn.closed) {
          clearInterval(check);
          conn.close();
        }
      }, 50);
      check.unref();
    }
  }

  private startSweeper(): void {
    if (this.sweeper) return;
    const idle = this.options.idleTimeout ?? 60_000;
    this.sweeper = setInterval(() => {
      const now = Date.now();
      for (const list of this.conns.values()) {
        for (const conn of [...list]) if (conn.inflight === 0 && now - conn.lastUsed > idle) conn.close();
      }
    }, Math.min(idle, 10_000));
    this.sweeper.unref();
  }

  /** Closes every connection; calls in flight fail. */
  close(): void {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = undefined;
    for (const list of [...this.conns.values()]) for (const conn of [...list]) conn.close();
    this.conns.clear();
  }
}
