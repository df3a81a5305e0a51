import { createServer, type Server as NetServer, type Socket } from 'node:net';
import { chmodSync, unlinkSync, existsSync } from 'node:fs';
import { BadRequest, Cancelled, MicroError, NotFound, PayloadTooLarge, ServiceUnavailable, Timeout, toMicroError } from '../errors/errors.js';
import { CallContext, validTraceparent } from '../context/context.js';
import { codecById, type Codec } from '../codec/codec.js';
import type { Logger } from '../logger/logger.js';
import type { CompiledEndpoint, Router } from '../service/router.js';
import { cancelDeadline, scheduleDeadline, type DeadlineEntry } from '../util/deadlines.js';
import { parseAddress, formatAddress } from './address.js';
import { decodeFrame, encodeFrame, encodeWindow, FrameReader, FrameType, PREFACE, DEFAULT_MAX_FRAME, REFUSED, type Frame } from './frame.js';
import { Inbox, Outbox } from './flow.js';
import { FrameWriter } from './writer.js';
import { CallTable } from './table.js';

/**
 * The server side of the wire protocol. One RpcServer listens on one address and serves
 * every service mounted on it (a process hosting several services needs one port).
 */


/** ms a draining server keeps reading after its GoAway, for requests already on the way */
const DRAIN_GRACE = 100;

export interface RpcServerOptions {
  /** largest frame accepted, in bytes (default 4 MiB) */
  maxFrame?: number;
  /** concurrent calls and streams per connection (default 10,000) */
  maxStreams?: number;
  logger?: Logger;
}

interface Mounted {
  router: Router;
  logger: Logger;
}

/**
 * Another way in to the services mounted on an RpcServer, beside its socket: the NATS
 * transport (transport/nats/server.ts). It is told of every service mounted, and drained
 * and closed with the server. [NATS transport, issue 6]
 */
export interface RpcListener {
  /** Starts serving a mounted service; resolves with its address once callers can reach it. */
  mount(namespace: string, service: string): Promise<string>;
  unmount(namespace: string, service: string): void;
  /** Takes no new calls (callers go elsewhere); the calls in flight go on. */
  stopAccepting(): Promise<void>;
  close(): Promise<void>;
}

export class RpcServer {
  readonly maxFrame: number;
  readonly maxStreams: number;
  private readonly mounted = new Map<string, Mounted>();
  private readonly connections = new Set<ServerConnection>();
  private server: NetServer | undefined;
  private unixPath: string | undefined;
  private boundAddress: string | undefined;
  private draining = false;
  private inflight = 0;
  /** unary and client-streaming calls in flight: what a graceful stop waits for */
  private answering = 0;
  private idleWaiters: Array<() => void> = [];
  readonly logger: Logger | undefined;
  private readonly listeners: RpcListener[] = [];
  /** more unix sockets serving the same services (listenAlso) */
  private readonly extra: { server: NetServer; path: string }[] = [];

  constructor(options: RpcServerOptions = {}) {
    this.maxFrame = options.maxFrame ?? DEFAULT_MAX_FRAME;
    this.maxStreams = options.maxStreams ?? 10_000;
    this.logger = options.logger;
  }

  get address(): string | undefined {
    return this.boundAddress;
  }

  get isDraining(): boolean {
    return this.draining;
  }

  /** Calls and streams being served right now. */
  get activeCalls(): number {
    return this.inflight;
  }

  mount(namespace: string, router: Router, logger: Logger): void {
    this.mounted.set(`${namespace}\n${router.service}`, { router, logger });
  }

  unmount(namespace: string, service: string): void {
    this.mounted.delete(`${namespace}\n${service}`);
    for (const l of this.listeners) l.unmount(namespace, service);
  }

  /** Serves the services mounted here through another listener too (NATS). */
  attach(listener: RpcListener): void {
    if (!this.listeners.includes(listener)) this.listeners.push(listener);
  }

  /** The listeners attached, e.g. to find the NATS one. */
  get attached(): readonly RpcListener[] {
    return this.listeners;
  }

  /**
   * Starts serving a mounted service on the attached listeners; resolves with the address
   * of the first (what the service registers), or the socket's address when none.
   */
  async expose(namespace: string, service: string): Promise<string | undefined> {
    let address: string | undefined;
    for (const l of this.listeners) {
      const a = await l.mount(namespace, service);
      address ??= a;
    }
    return address ?? this.boundAddress;
  }

  /** @internal */
  lookup(serviceKey: string): Mounted | undefined {
    return this.mounted.get(serviceKey);
  }

  /** Listens; resolves with the bound address (port 0 picks a free port). */
  async listen(address: string): Promise<string> {
    if (this.server) throw new Error(`already listening on ${this.boundAddress}`);
    const parsed = parseAddress(address);
    const server = createServer({ noDelay: true, keepAlive: true, keepAliveInitialDelay: 15_000 }, (socket) => this.accept(socket));
    server.maxConnections = 10_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      if (parsed.kind === 'unix') {
        // a socket file left by a process that died is removed; a live one makes listen fail
        if (existsSync(parsed.path)) {
          try {
            unlinkSync(parsed.path);
          } catch {
            // listen reports the real problem
          }
        }
        server.listen(parsed.path, () => resolve());
      } else {
        server.listen(parsed.port, parsed.host, () => resolve());
      }
    }).catch((err: NodeJS.ErrnoException) => {
      throw ServiceUnavailable('micro.transport', `cannot listen on ${address}: ${err.code ?? err.message}`);
    });
    server.on('error', (err) => this.logger?.error({ err }, 'rpc server error'));
    this.server = server;
    if (parsed.kind === 'unix') {
      this.unixPath = parsed.path;
      this.boundAddress = formatAddress(parsed);
    } else {
      const a = server.address();
      const port = a && typeof a === 'object' ? a.port : parsed.port;
      this.boundAddress = formatAddress({ kind: 'tcp', host: parsed.host, port });
    }
    return this.boundAddress;
  }

  /**
   * Serves the same services on a unix socket too, reachable by every local user (`mode`,
   * default 0666): how sandboxed processes without a network reach a server on TCP.
   */
  async listenAlso(path: string, mode = 0o666): Promise<string> {
    if (existsSync(path)) unlinkSync(path);
    const server = createServer((socket) => this.accept(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => resolve());
    }).catch((err: NodeJS.ErrnoException) => {
      throw ServiceUnavailable('micro.transport', `cannot listen on unix://${path}: ${err.code ?? err.message}`);
    });
    chmodSync(path, mode);
    server.on('error', (err) => this.logger?.error({ err }, 'rpc server error'));
    this.extra.push({ server, path });
    return `unix://${path}`;
  }

  private accept(socket: Socket): void {
    if (this.draining) {
      socket.destroy();
      return;
    }
    const conn = new ServerConnection(this, socket);
    this.connections.add(conn);
    socket.once('close', () => this.connections.delete(conn));
  }

  /** @internal */
  callStarted(waited: boolean): void {
    this.inflight++;
    if (waited) this.answering++;
  }

  /** @internal */
  callEnded(waited: boolean): void {
    this.inflight--;
    if (waited) this.answering--;
    if (this.answering === 0 && this.idleWaiters.length > 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  /**
   * Graceful stop: no new connections, every connection is told to go away (clients send
   * new calls elsewhere), calls in flight that answer once (unary and client-streaming)
   * finish, up to `timeoutMs`, then all closes. Streams of responses (watches,
   * subscriptions, which may never end) are cut: their callers see the connection go and
   * open them again elsewhere.
   */
  async drain(timeoutMs = 10_000): Promise<void> {
    this.draining = true;
    this.server?.close();
    for (const e of this.extra) e.server.close();
    for (const conn of this.connections) conn.goAway();
    for (const l of this.listeners) await l.stopAccepting();
    // requests already on their way when the GoAway left get a REFUSED answer (the client
    // tries another node) rather than a connection that closes under them
    await new Promise((resolve) => setTimeout(resolve, Math.min(DRAIN_GRACE, timeoutMs)));
    if (this.answering > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, timeoutMs);
        timer.unref();
        this.idleWaiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    // end (not destroy) the connections, so that answers already written are delivered
    for (const conn of this.connections) conn.end();
    await this.close();
  }

  /** Stops at once: calls in flight are cancelled. */
  async close(): Promise<void> {
    this.draining = true;
    for (const conn of this.connections) if (!conn.ending) conn.destroy();
    this.connections.clear();
    for (const l of this.listeners) await l.close();
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    for (const e of this.extra.splice(0)) {
      await new Promise<void>((resolve) => e.server.close(() => resolve()));
      try {
        unlinkSync(e.path);
      } catch {
        // already gone
      }
    }
    if (this.unixPath) {
      try {
        unlinkSync(this.unixPath);
      } catch {
        // already gone
      }
      this.unixPath = undefined;
    }
  }
}

/** @internal one call being served */
export interface ServerCall extends DeadlineEntry {
  ctx: CallContext;
  codec: Codec;
  service: string;
  inbox: Inbox | undefined;
  outbox: Outbox | undefined;
  done: boolean;
  /** a graceful stop waits for it */
  waited: boolean;
}

const NO_DEADLINE = 0;

/**
 * The calls of one peer: decodes its frames, runs its calls and streams with their
 * deadlines, cancellation and flow control, and answers through `send`. A TCP or Unix
 * connection is one session (ServerConnection); over NATS each calling connection is
 * one (transport/nats/server.ts). [NATS transport, issue 6: split from ServerConnection
 * so both transports share it.]
 */
export abstract class FrameSession {
  protected readonly calls = new CallTable<ServerCall>();
  protected closed = false;

  constructor(
    protected readonly server: RpcServer,
    /** largest frame this session accepts and sends */
    protected readonly maxFrame: number,
  ) {}

  /** Writes one length-prefixed frame (see frame.ts) to the peer. */
  protected abstract send(buf: Buffer): void;
  /** The peer broke the protocol beyond answering: drop it. */
  abstract destroy(): void;

  /** The caller's address as the transport saw it (Context.peer); none by default. */
  protected peer(): string | undefined {
    return undefined;
  }

  /** Calls and streams of this session in flight. */
  get activeCalls(): number {
    return this.calls.size;
  }

  protected sendError(id: number, err: MicroError): void {
    this.send(encodeFrame(FrameType.Error, id, 0, JSON.stringify(err.toJSON())));
  }

  protected onOversize(type: number, id: number, length: number): void {
    const err = PayloadTooLarge('micro.transport', `frame of ${length} bytes exceeds the limit of ${this.maxFrame} bytes`);
    const call = this.calls.get(id);
    if (call) {
      this.failCall(call, id, err);
    } else if (type === FrameType.Request || type === FrameType.Open) {
      this.sendError(id, err);
    }
  }

  /** Handles one frame (without its length prefix) from the peer. */
  onFrame(buf: Buffer): void {
    let frame: Frame;
    try {
      frame = decodeFrame(buf);
    } catch (err) {
      // answer on the id when there is one; a frame too short to have one ends the connection
      if (buf.length >= 6) {
        const id = buf.readUInt32BE(2);
        const call = this.calls.get(id);
        const e = toMicroError(err, 'micro.transport');
        if (call) this.failCall(call, id, e);
        else this.sendError(id, e);
      } else {
        this.destroy();
      }
      return;
    }
    switch (frame.type) {
      case FrameType.Request:
      case FrameType.Open:
        this.onRequest(frame);
        return;
      case FrameType.Data: {
        const call = this.calls.get(frame.id);
        if (!call || !call.inbox) return; // a late message for a call already over
        let value: unknown;
        try {
          value = call.codec.decode(frame.body);
        } catch (err) {
          this.failCall(call, frame.id, toMicroError(err, call.service));
          return;
        }
        if (!call.inbox.deliver(value, frame.body.length)) {
          this.failCall(call, frame.id, BadRequest('micro.transport', 'stream flow control window exceeded'));
        }
        return;
      }
      case FrameType.End:
        this.calls.get(frame.id)?.inbox?.end();
        return;
      case FrameType.Cancel: {
        const call = this.calls.get(frame.id);
        if (call) this.finish(call, frame.id, Cancelled(call.service, 'cancelled by the caller'));
        return;
      }
      case FrameType.Window:
        this.calls.get(frame.id)?.outbox?.addCredit(frame.credit);
        return;
      case FrameType.Ping:
        this.send(encodeFrame(FrameType.Pong, frame.id, 0, undefined));
        return;
      case FrameType.Pong:
      case FrameType.GoAway:
        return;
      default:
        this.sendError(frame.id, BadRequest('micro.transport', `unexpected frame type ${frame.type} from a client`));
    }
  }

  private onRequest(frame: Frame): void {
    const head = frame.head!;
    const id = frame.id;
    if (this.calls.has(id)) {
      this.sendError(id, BadRequest('micro.transport', `call id ${id} is already in use on this connection`));
      return;
    }
    if (this.server.isDraining) {
      this.sendError(id, ServiceUnavailable(REFUSED, `server is shutting down; ${head.service} was not called: try another node`));
      return;
    }
    if (this.calls.size >= this.server.maxStreams) {
      this.sendError(id, ServiceUnavailable(REFUSED, `too many concurrent calls on one connection (limit ${this.server.maxStreams}); ${head.service} was not called`));
      return;
    }
    const mounted = this.server.lookup(head.serviceKey);
    if (!mounted) {
      this.sendError(id, NotFound(head.service, `service ${head.service} not found in namespace ${head.namespace} on this node`));
      return;
    }
    const ep = mounted.router.get(head.endpoint);
    if (!ep) {
      this.sendError(id, NotFound(head.service, `endpoint ${head.service}.${head.endpoint} not found`));
      return;
    }
    if (ep.kind !== head.kind) {
      this.sendError(id, BadRequest(head.service, `endpoint ${head.service}.${ep.name} is ${ep.kind === 'unary' ? 'not a stream' : `a ${ep.kind} stream`}; call it as one`));
      return;
    }
    const codec = codecById(frame.codec)!;
    const ctx = new CallContext({
      service: head.service,
      endpoint: ep.name,
      namespace: head.namespace,
      metadata: head.meta?.md,
      deadline: head.timeout > 0 ? Date.now() + head.timeout : undefined,
      traceparent: validTraceparent(head.meta?.tp),
      logger: mounted.logger,
      peer: this.peer(),
    });
    const call: ServerCall = {
      ctx,
      codec,
      service: head.service,
      inbox: undefined,
      outbox: undefined,
      done: false,
      waited: false,
      at: ctx.deadline ?? NO_DEADLINE,
      onExpire: () => this.finish(call, id, Timeout(head.service, `deadline exceeded after ${head.timeout} ms`)),
    };
    this.calls.set(id, call);
    call.waited = ep.kind === 'unary' || ep.kind === 'client';
    this.server.callStarted(call.waited);
    if (call.at !== NO_DEADLINE) scheduleDeadline(call);

    if (ep.kind === 'unary' || ep.kind === 'server') {
      let request: unknown;
      try {
        request = codec.decode(frame.body);
      } catch (err) {
        this.finish(call, id, toMicroError(err, head.service));
        return;
      }
      if (ep.kind === 'unary') this.serveUnary(call, id, ep, request);
      else this.serveStream(call, id, ep, request);
    } else {
      call.inbox = new Inbox(
        this.maxFrame,
        (bytes) => this.send(encodeWindow(id, bytes)),
        () => undefined,
      );
      const requests = validated(call.inbox, ep);
      if (ep.kind === 'client') this.serveUnary(call, id, ep, requests);
      else this.serveStream(call, id, ep, requests);
    }
  }

  private serveUnary(call: ServerCall, id: number, ep: CompiledEndpoint, request: unknown): void {
    ep.invoke(call.ctx, request).then(
      (response) => {
        if (call.done) return;
        let body: Uint8Array | string;
        try {
          body = call.codec.id === 0 ? (response === undefined ? 'null' : JSON.stringify(response)) : call.codec.encode(response);
        } catch (err) {
          this.finish(call, id, toMicroError(err, call.service));
          return;
        }
        if (byteLength(body) + 6 > this.maxFrame) {
          this.finish(call, id, PayloadTooLarge(call.service, `response exceeds the frame limit of ${this.maxFrame} bytes`));
          return;
        }
        this.send(encodeFrame(FrameType.Response, id, call.codec.id, body));
        this.finish(call, id, undefined);
      },
      (err: unknown) => {
        this.logFailure(call, err);
        this.finish(call, id, toMicroError(err, call.service));
      },
    );
  }

  private serveStream(call: ServerCall, id: number, ep: CompiledEndpoint, request: unknown): void {
    call.outbox = new Outbox();
    const outbox = call.outbox;
    void (async () => {
      let iterator: AsyncIterator<unknown> | Iterator<unknown> | undefined;
      try {
        const responses = (await ep.invoke(call.ctx, request)) as AsyncIterable<unknown> | Iterable<unknown>;
        if (!responses || (typeof (responses as AsyncIterable<unknown>)[Symbol.asyncIterator] !== 'function' && typeof (responses as Iterable<unknown>)[Symbol.iterator] !== 'function')) {
          throw new TypeError(`handler of streaming endpoint ${ep.name} must return an iterable`);
        }
        iterator = Symbol.asyncIterator in responses ? responses[Symbol.asyncIterator]() : (responses as Iterable<unknown>)[Symbol.iterator]();
        for (;;) {
          if (call.done) break;
          const next = await iterator.next();
          if (next.done || call.done) break;
          const value = ep.checkResponse(next.value);
          const body = call.codec.id === 0 ? (value === undefined ? 'null' : JSON.stringify(value)) : call.codec.encode(value);
          const size = byteLength(body);
          if (size + 6 > this.maxFrame) throw PayloadTooLarge(call.service, `stream message exceeds the frame limit of ${this.maxFrame} bytes`);
          const wait = outbox.reserve(size);
          if (wait) await wait;
          if (call.done) break;
          this.send(encodeFrame(FrameType.Data, id, call.codec.id, body));
        }
        if (!call.done) {
          this.send(encodeFrame(FrameType.End, id, 0, undefined));
          this.finish(call, id, undefined);
        }
      } catch (err) {
        if (!call.done) {
          this.logFailure(call, err);
          this.finish(call, id, toMicroError(err, call.service));
        }
      } finally {
        // a stream cut short (cancel, deadline, lost peer) ends the handler's generator too
        if (call.done && iterator?.return) {
          try {
            await iterator.return();
          } catch {
            // the handler's own cleanup failed; nothing to tell the caller who is gone
          }
        }
      }
    })();
  }

  private logFailure(call: ServerCall, err: unknown): void {
    if (!(err instanceof MicroError)) call.ctx.logger.error({ err }, 'handler failed');
  }

  /** Ends a call once: sends the error if there is one, releases its state. */
  private finish(call: ServerCall, id: number, err: MicroError | undefined): void {
    if (call.done) return;
    call.done = true;
    this.calls.delete(id);
    if (call.at !== NO_DEADLINE) cancelDeadline(call);
    this.server.callEnded(call.waited);
    if (err) {
      call.ctx.abort(err);
      call.inbox?.fail(err);
      call.outbox?.close(err);
      if (err.code !== 499) this.sendError(id, err);
    } else {
      call.inbox?.end();
      call.outbox?.close();
    }
  }

  private failCall(call: ServerCall, id: number, err: MicroError): void {
    this.finish(call, id, err);
  }

  /** Every call in flight ends: the peer is gone. */
  protected loseCalls(): void {
    if (this.calls.size === 0) return;
    const lost = Cancelled('micro.transport', 'connection to the caller was lost');
    for (const [id, call] of this.calls.drain()) {
      // drained already: put it back for finish() to take out and count
      this.calls.set(id, call);
      this.finish(call, id, lost);
    }
  }
}

/** One TCP or Unix socket connection from a client. */
class ServerConnection extends FrameSession {
  private readonly reader: FrameReader;
  private readonly writer: FrameWriter;
  private preface = true;
  /** the socket's peer, read once: `tcp:<ip>`, or `unix` for a unix socket (which has no remote address) */
  private readonly remote: string;

  constructor(
    server: RpcServer,
    private readonly socket: Socket,
  ) {
    super(server, server.maxFrame);
    this.remote = socket.remoteAddress ? `tcp:${socket.remoteAddress}` : 'unix';
    this.writer = new FrameWriter(socket);
    this.reader = new FrameReader(
      server.maxFrame,
      (buf) => this.onFrame(buf),
      (type, id, length) => this.onOversize(type, id, length),
    );
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', () => {
      // 'close' follows; nothing to add
    });
    socket.on('close', () => this.onClose());
    // a connection that never says who it is does not hold a socket for long
    socket.setTimeout(10_000, () => {
      if (this.preface) socket.destroy();
    });
  }

  private onData(chunk: Buffer): void {
    if (this.preface) {
      if (chunk.length < PREFACE.length || !chunk.subarray(0, PREFACE.length).equals(PREFACE)) {
        // not our protocol (an HTTP client, a port scanner): say so and hang up
        const text = 'this port speaks the micro RPC protocol; call services through the API gateway or a micro client\n';
        if (chunk.subarray(0, 4).toString('latin1').match(/^[A-Z]{3,}/)) {
          this.socket.end(`HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: ${text.length}\r\nConnection: close\r\n\r\n${text}`);
        } else {
          this.socket.end(text);
        }
        this.socket.destroySoon();
        this.closed = true;
        return;
      }
      this.preface = false;
      this.socket.setTimeout(0);
      chunk = chunk.subarray(PREFACE.length);
      if (chunk.length === 0) return;
    }
    if (this.closed) return;
    this.reader.push(chunk);
  }

  protected send(buf: Buffer): void {
    if (this.closed) return;
    this.writer.write(buf);
  }

  /** Flushes what was written and closes; destroyed after a grace period if the peer lingers. */
  get ending(): boolean {
    return this.closed;
  }

  end(): void {
    if (this.closed) return;
    this.closed = true;
    this.writer.flush();
    this.socket.end();
    setTimeout(() => this.socket.destroy(), 1_000).unref();
  }

  goAway(): void {
    this.send(encodeFrame(FrameType.GoAway, 0, 0, undefined));
  }

  protected override peer(): string {
    return this.remote;
  }

  destroy(): void {
    this.closed = true;
    this.socket.destroy();
    this.onClose();
  }

  private onClose(): void {
    this.closed = true;
    this.loseCalls();
  }
}

function byteLength(body: string | Uint8Array): number {
  return typeof body === 'string' ? Buffer.byteLength(body, 'utf8') : body.length;
}

/** Streamed requests, each checked against the endpoint's schema as the handler reads it. */
async function* validated(inbox: Inbox, ep: CompiledEndpoint): AsyncGenerator<unknown> {
  for await (const value of inbox) yield ep.parseMessage(value);
}
