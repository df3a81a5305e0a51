import type { IncomingMessage, ServerResponse } from 'node:http';
import { WebSocket, type RawData } from 'ws';
import type { ResponseStream } from '@micro/sdk';
import { SECURITY_PAIRS, tooDeep } from './json.js';
import { errors, toMicroErrorPublic, type Client, type EndpointRecord, type MicroError } from './deps.js';
import { failureCode, type Settlement } from './meter.js';

/**
 * Streams through the gateway: a WebSocket on `/v1/{service}/{endpoint}` carries a stream
 * of any kind (and unary calls), `GET` with `Accept: text/event-stream` a server stream as
 * server-sent events. See the README for the protocol.
 */

/** One call through the gateway, resolved and authorized. */
export interface StreamCall {
  service: string;
  endpoint: EndpointRecord;
  client: Client;
  /** metadata of the call (the caller's token) */
  metadata: Record<string, string>;
  /** ms a unary call may take */
  timeout: number;
  /** the HTTP client's address, for services served in this process (CallOptions.peer) */
  peer?: string;
  /** the gateway's id of the request (X-Request-Id of server-sent events) */
  requestId?: string;
}

export interface StreamLimits {
  /** the most requests a client queues before the service reads them (default 1,000) → close 1008 */
  maxQueued: number;
  /** bytes buffered towards a slow client before the gateway stops reading the service (default 1 MiB) */
  highWaterMark: number;
  /** how deep a message may nest (default 64) → close 1003 */
  maxDepth: number;
  /** ms between WebSocket pings; a client that has not answered the last one is dropped (default 30,000) */
  pingInterval: number;
  /** ms between SSE keep-alive comments (default 15,000) */
  keepAlive: number;
}

export const DEFAULT_STREAM_LIMITS: StreamLimits = { maxQueued: 1000, highWaterMark: 1024 * 1024, maxDepth: 64, pingInterval: 30_000, keepAlive: 15_000 };

/** WebSocket close codes of the protocol. */
export const CLOSE = { normal: 1000, goingAway: 1001, unsupported: 1003, policy: 1008, tooBig: 1009 } as const;

/** The close code of a call that failed with the HTTP status `code`: 4000 + code (4400 … 4599). */
export function errorCloseCode(code: number): number {
  return 4000 + (code >= 400 && code <= 599 ? code : 500);
}

/**
 * The status a stream that closed with `code` is recorded with by the meter: the error's
 * (4000 + status), 400 for a client that broke the protocol, 503 for a gateway that shut
 * down, 499 for a client that went away.
 */
function closeStatus(code: number): number {
  if (code >= 4400 && code <= 4599) return code - 4000;
  if (code === CLOSE.policy || code === CLOSE.unsupported || code === CLOSE.tooBig) return 400;
  if (code === CLOSE.goingAway) return 503;
  return 499;
}

/** A close reason fits in 123 bytes: ASCII only, cut short. */
function reason(text: string): string {
  return text.replace(/[^\x20-\x7e]/g, '?').slice(0, 120);
}

/** `{"end": true}`: the client has sent all its requests. */
function isEnd(value: unknown): boolean {
  if (!value || typeof value !== 'object' || Array.isArray(value)) return false;
  const keys = Object.keys(value);
  return keys.length === 1 && keys[0] === 'end' && (value as { end: unknown }).end === true;
}

/** The requests a client sent, queued (bounded) until the service reads them. */
class Inbox implements AsyncIterable<unknown> {
  private readonly items: unknown[] = [];
  private ended = false;
  private failure: MicroError | undefined;
  private wake: (() => void) | undefined;

  constructor(private readonly max: number) {}

  /** false when the queue is full */
  push(value: unknown): boolean {
    if (this.ended) return true;
    if (this.items.length >= this.max) return false;
    this.items.push(value);
    this.notify();
    return true;
  }

  end(): void {
    this.ended = true;
    this.notify();
  }

  fail(err: MicroError): void {
    if (this.ended) return;
    this.failure = err;
    this.items.length = 0;
    this.end();
  }

  private notify(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<unknown> {
    for (;;) {
      if (this.items.length > 0) {
        yield this.items.shift();
        continue;
      }
      if (this.ended) {
        if (this.failure) throw this.failure;
        return;
      }
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }
}

/**
 * Serves one call on an accepted WebSocket. Resolves when the socket has closed.
 */
export function serveWebSocket(ws: WebSocket, call: StreamCall, limits: StreamLimits = DEFAULT_STREAM_LIMITS, settlement?: Settlement): Promise<void> {
  const { service, endpoint: ep, client } = call;
  const kind = ep.kind;
  const abort = new AbortController();
  const inbox = new Inbox(limits.maxQueued);
  let cancel: (() => void) | undefined;
  let first: ((value: unknown) => void) | undefined;
  const firstRequest = new Promise<unknown>((resolve) => (first = resolve));
  let gotFirst = false;
  let done = false;

  const closed = new Promise<void>((resolve) => ws.once('close', () => resolve()));

  /** Ends the call on the service and closes the socket with `code`. */
  const stop = (code: number, why: string) => {
    if (code !== CLOSE.normal) settlement?.failed(closeStatus(code));
    if (!done) {
      done = true;
      abort.abort();
      inbox.fail(errors.Cancelled(service, why));
      cancel?.();
    }
    if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) ws.close(code, reason(why));
  };

  ws.on('close', () => {
    // a call whose end was not recorded as a success by now did not succeed
    settlement?.failed(499);
    if (done) return;
    done = true;
    // the client went away: cancel the call on the service
    abort.abort();
    inbox.fail(errors.Cancelled(service, 'the WebSocket closed'));
    cancel?.();
  });
  ws.on('error', () => ws.terminate());

  ws.on('message', (data: RawData, isBinary: boolean) => {
    if (done) return;
    if (isBinary) return stop(CLOSE.unsupported, 'binary messages are not accepted: send JSON text');
    const text = Array.isArray(data) ? Buffer.concat(data).toString('utf8') : Buffer.from(data as Buffer).toString('utf8');
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      return stop(CLOSE.unsupported, 'a message must be JSON text');
    }
    if (tooDeep(value, limits.maxDepth)) return stop(CLOSE.unsupported, `a message may nest at most ${limits.maxDepth} levels`);
    if (kind === 'unary' || kind === 'server') {
      if (!gotFirst) {
        if (isEnd(value)) return stop(CLOSE.policy, 'the stream ended before its request');
        gotFirst = true;
        first?.(value);
        return;
      }
      if (isEnd(value)) return;
      return stop(CLOSE.policy, `${ep.name} takes one request`);
    }
    if (isEnd(value)) return inbox.end();
    if (!inbox.push(value)) stop(CLOSE.policy, `more than ${limits.maxQueued} requests queued: wait for responses`);
  });

  // pings: a client that has not answered the previous one is gone
  let alive = true;
  ws.on('pong', () => (alive = true));
  const pinger = setInterval(() => {
    if (!alive) return ws.terminate();
    alive = false;
    ws.ping();
  }, limits.pingInterval);
  pinger.unref();

  /** One message, not faster than the socket drains. */
  const send = async (value: unknown): Promise<void> => {
    if (ws.readyState !== WebSocket.OPEN) throw errors.Cancelled(service, 'the WebSocket closed');
    const flushed = new Promise<void>((resolve) => ws.send(JSON.stringify(value === undefined ? null : value), () => resolve()));
    if (ws.bufferedAmount > limits.highWaterMark) await flushed;
  };

  // metered calls are recorded (durably) as successes before the client sees their answer
  // (a unary or client stream's one result) or their normal end (a server or bidi stream)
  const run = async (): Promise<void> => {
    const options = { metadata: call.metadata, signal: abort.signal, peer: call.peer };
    if (kind === 'unary' || kind === 'client') {
      let result: unknown;
      if (kind === 'unary') {
        const request = await firstRequest;
        if (done) return;
        result = await client.call(service, ep.name, request, { ...options, timeout: call.timeout });
      } else {
        result = await (client.stream(service, ep.name, 'client', inbox, options) as Promise<unknown>);
      }
      if (done) return;
      await settlement?.ok();
      await send(result);
    } else {
      const request = kind === 'server' ? await firstRequest : inbox;
      if (done) return;
      const stream = client.stream(service, ep.name, kind, request, options) as ResponseStream<unknown>;
      cancel = () => stream.cancel('the WebSocket closed');
      if (done) cancel();
      for await (const value of stream) {
        if (done) break;
        await send(value);
      }
      if (done) return;
      await settlement?.ok();
    }
    stop(CLOSE.normal, 'done');
  };

  run().catch((err: unknown) => {
    settlement?.failed(failureCode(err, service));
    if (done) return;
    const e = toMicroErrorPublic(err, service);
    const code = e.code >= 400 && e.code <= 599 ? e.code : 500;
    if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ error: { ...e.toJSON(), code } }));
    stop(errorCloseCode(code), e.status || 'error');
  });

  return closed.finally(() => clearInterval(pinger));
}

/** Whether a GET asks for server-sent events. */
export function wantsEventStream(req: IncomingMessage): boolean {
  return /(^|,)\s*text\/event-stream\s*(;|,|$)/i.test(String(req.headers.accept ?? ''));
}

/**
 * Serves a server stream as server-sent events: `data: <json>` per response, `event: error`
 * for an error, `event: end` when the stream is over (so that EventSource does not reconnect).
 */
export async function serveEventStream(req: IncomingMessage, res: ServerResponse, call: StreamCall, request: unknown, limits: StreamLimits = DEFAULT_STREAM_LIMITS, settlement?: Settlement): Promise<void> {
  const { service, endpoint: ep, client } = call;
  const abort = new AbortController();
  const stream = client.stream(service, ep.name, 'server', request, { metadata: call.metadata, signal: abort.signal, peer: call.peer }) as ResponseStream<unknown>;
  let gone = false;
  res.once('close', () => {
    gone = true;
    abort.abort();
    stream.cancel('the client went away');
  });
  const headers = [...SECURITY_PAIRS, 'content-type', 'text/event-stream; charset=utf-8', 'x-accel-buffering', 'no'];
  if (call.requestId !== undefined) headers.push('x-request-id', call.requestId);
  res.writeHead(200, headers);
  res.flushHeaders();
  const keepAlive = setInterval(() => res.write(': keep-alive\n\n'), limits.keepAlive);
  keepAlive.unref();
  const write = async (chunk: string): Promise<void> => {
    if (gone) return;
    if (!res.write(chunk)) await new Promise<void>((resolve) => {
      const done = () => {
        res.off('drain', done);
        res.off('close', done);
        resolve();
      };
      res.on('drain', done);
      res.on('close', done);
    });
  };
  try {
    for await (const value of stream) {
      if (gone) break;
      await write(`data: ${JSON.stringify(value === undefined ? null : value)}\n\n`);
    }
    // the client that left before the end gets nothing more (and its call is no success)
    if (gone) return;
    // metered: recorded (durably) before the client sees the normal end
    await settlement?.ok();
    await write('event: end\ndata: {}\n\n');
  } catch (err) {
    settlement?.failed(failureCode(err, service));
    if (!gone) {
      const e = toMicroErrorPublic(err, service);
      await write(`event: error\ndata: ${JSON.stringify(e.toJSON())}\n\n`);
    }
  } finally {
    clearInterval(keepAlive);
    if (!gone) res.end();
  }
}
