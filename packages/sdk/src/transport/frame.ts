/**
 * The wire protocol: one binary message format, carried by TCP and Unix sockets with a
 * 4-byte length prefix (and, later, as the payload of a NATS message, without it).
 *
 * Every message starts with
 *
 *     u8 type | u8 flags | u32 id
 *
 * where `id` names the call (or stream) it belongs to, so many calls share one
 * connection, and the low two bits of `flags` name the codec of the body (0 json,
 * 1 msgpack). What follows depends on the type:
 *
 *     REQUEST, OPEN   u8 kind | u32 timeout ms (0 none) | u16 route length | route
 *                     | u32 meta length | meta (JSON) | body
 *     RESPONSE, DATA  body
 *     ERROR, CANCEL   body: JSON {id, code, detail, status}
 *     WINDOW          u32 bytes of credit
 *     END, PING, PONG, GOAWAY   nothing
 *
 * The route is `namespace \n service \n endpoint`. A deadline travels as the time left,
 * not a wall-clock time, so clocks of the two machines need not agree (as in gRPC).
 */
import { BadRequest } from '../errors/errors.js';
import type { StreamKind } from '../registry/registry.js';

export const enum FrameType {
  Request = 1,
  Response = 2,
  Error = 3,
  Open = 4,
  Data = 5,
  End = 6,
  Cancel = 7,
  Window = 8,
  Ping = 9,
  Pong = 10,
  GoAway = 11,
}

export const MAX_FRAME_TYPE = 11;

/** The first bytes a client writes on a new connection: magic + protocol version. */
export const PREFACE = Buffer.from('MCRO\x01', 'latin1');

/** Bytes before the body of every message. */
export const COMMON_HEADER = 6;
/** Default bound on one frame (message) in bytes. */
export const DEFAULT_MAX_FRAME = 4 * 1024 * 1024;
/** Bytes a stream's receiver accepts before the sender must wait for credit. */
export const INITIAL_WINDOW = 1024 * 1024;

const KIND_CODES: Record<StreamKind, number> = { unary: 0, server: 1, client: 2, bidi: 3 };
const KINDS: StreamKind[] = ['unary', 'server', 'client', 'bidi'];

export interface RequestHead {
  kind: StreamKind;
  timeout: number;
  namespace: string;
  service: string;
  endpoint: string;
  /** `namespace \n service`: how a server finds the service (made once per route) */
  serviceKey: string;
  meta: RequestMeta | undefined;
}

/** What travels beside a request: metadata and the trace it belongs to. */
export interface RequestMeta {
  md?: Record<string, string>;
  tp?: string;
}

/** A message as read off the wire; `body` is a view into the read buffer. */
export interface Frame {
  type: FrameType;
  codec: number;
  id: number;
  head: RequestHead | undefined;
  body: Buffer;
  /** for WINDOW */
  credit: number;
}

/** A route encoded once per (namespace, service, endpoint) and reused for every call. */
export function encodeRoute(namespace: string, service: string, endpoint: string): Buffer {
  return Buffer.from(`${namespace}\n${service}\n${endpoint}`, 'utf8');
}

// ---- writing ---------------------------------------------------------------------

type Body = string | Uint8Array | undefined;

function bodyLength(body: Body): number {
  if (body === undefined) return 0;
  return typeof body === 'string' ? Buffer.byteLength(body, 'utf8') : body.length;
}

function writeBody(buf: Buffer, offset: number, body: Body): void {
  if (body === undefined) return;
  if (typeof body === 'string') buf.write(body, offset, 'utf8');
  else buf.set(body, offset);
}

/**
 * A length-prefixed frame with no request head. JSON bodies are passed as strings and
 * written straight into the frame buffer, so they are copied once.
 */
export function encodeFrame(type: FrameType, id: number, codec: number, body: Body): Buffer {
  const len = COMMON_HEADER + bodyLength(body);
  const buf = Buffer.allocUnsafe(4 + len);
  buf.writeUInt32BE(len, 0);
  buf[4] = type;
  buf[5] = codec;
  buf.writeUInt32BE(id, 6);
  writeBody(buf, 10, body);
  return buf;
}

export function encodeWindow(id: number, credit: number): Buffer {
  const buf = Buffer.allocUnsafe(14);
  buf.writeUInt32BE(10, 0);
  buf[4] = FrameType.Window;
  buf[5] = 0;
  buf.writeUInt32BE(id, 6);
  buf.writeUInt32BE(Math.min(credit, 0xffffffff), 10);
  return buf;
}

export function encodeRequest(
  type: FrameType.Request | FrameType.Open,
  id: number,
  codec: number,
  kind: StreamKind,
  timeout: number,
  route: Buffer,
  meta: string | undefined,
  body: Body,
): Buffer {
  const metaLen = meta === undefined ? 0 : Buffer.byteLength(meta, 'utf8');
  const len = COMMON_HEADER + 1 + 4 + 2 + route.length + 4 + metaLen + bodyLength(body);
  const buf = Buffer.allocUnsafe(4 + len);
  let o = 0;
  buf.writeUInt32BE(len, o);
  buf[4] = type;
  buf[5] = codec;
  buf.writeUInt32BE(id, 6);
  buf[10] = KIND_CODES[kind];
  buf.writeUInt32BE(Math.max(0, Math.min(Math.ceil(timeout), 0xffffffff)), 11);
  buf.writeUInt16BE(route.length, 15);
  route.copy(buf, 17);
  o = 17 + route.length;
  buf.writeUInt32BE(metaLen, o);
  o += 4;
  if (meta !== undefined) {
    buf.write(meta, o, 'utf8');
    o += metaLen;
  }
  writeBody(buf, o, body);
  return buf;
}

// ---- reading ---------------------------------------------------------------------

type Route = [namespace: string, service: string, endpoint: string, serviceKey: string];
const routeCache = new Map<string, Route>();

function parseRoute(text: string): Route {
  let parts = routeCache.get(text);
  if (parts) return parts;
  const split = text.split('\n');
  if (split.length !== 3 || !split[0] || !split[1] || !split[2]) throw BadRequest('micro.transport', 'malformed route in request frame');
  parts = [split[0], split[1], split[2], `${split[0]}\n${split[1]}`];
  if (routeCache.size < 10_000) routeCache.set(text, parts);
  return parts;
}

/**
 * Decodes one message (without its length prefix). Throws a BadRequest for anything
 * malformed; the caller answers it on the message's id when that could be read.
 */
export function decodeFrame(buf: Buffer): Frame {
  if (buf.length < COMMON_HEADER) throw BadRequest('micro.transport', `frame of ${buf.length} bytes is shorter than its header`);
  const type = buf[0] as FrameType;
  const codec = (buf[1] as number) & 0x03;
  const id = buf.readUInt32BE(2);
  if (type < 1 || type > MAX_FRAME_TYPE) throw BadRequest('micro.transport', `unknown frame type ${type}`);
  if (codec > 1) throw BadRequest('micro.transport', `unknown codec ${codec}`);
  if (type === FrameType.Request || type === FrameType.Open) {
    if (buf.length < COMMON_HEADER + 11) throw BadRequest('micro.transport', 'request frame too short');
    const kind = KINDS[buf[6] as number];
    if (!kind) throw BadRequest('micro.transport', `unknown stream kind ${buf[6]}`);
    const timeout = buf.readUInt32BE(7);
    const routeLen = buf.readUInt16BE(11);
    let o = 13;
    if (o + routeLen + 4 > buf.length) throw BadRequest('micro.transport', 'request frame route overruns the frame');
    const [namespace, service, endpoint, serviceKey] = parseRoute(buf.toString('utf8', o, o + routeLen));
    o += routeLen;
    const metaLen = buf.readUInt32BE(o);
    o += 4;
    if (o + metaLen > buf.length) throw BadRequest('micro.transport', 'request frame metadata overruns the frame');
    let meta: RequestMeta | undefined;
    if (metaLen > 0) meta = parseMeta(buf.toString('utf8', o, o + metaLen));
    o += metaLen;
    return { type, codec, id, head: { kind, timeout, namespace, service, endpoint, serviceKey, meta }, body: buf.subarray(o), credit: 0 };
  }
  if (type === FrameType.Window) {
    if (buf.length < COMMON_HEADER + 4) throw BadRequest('micro.transport', 'window frame too short');
    return { type, codec, id, head: undefined, body: buf.subarray(COMMON_HEADER), credit: buf.readUInt32BE(COMMON_HEADER) };
  }
  return { type, codec, id, head: undefined, body: buf.subarray(COMMON_HEADER), credit: 0 };
}

function parseMeta(text: string): RequestMeta {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw BadRequest('micro.transport', 'request metadata is not valid JSON');
  }
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw BadRequest('micro.transport', 'request metadata must be a JSON object');
  const meta: RequestMeta = {};
  const { md, tp } = raw as { md?: unknown; tp?: unknown };
  if (md !== undefined) {
    if (!md || typeof md !== 'object' || Array.isArray(md)) throw BadRequest('micro.transport', 'metadata must be an object of strings');
    const clean: Record<string, string> = {};
    for (const [k, v] of Object.entries(md as Record<string, unknown>)) {
      if (typeof v !== 'string') throw BadRequest('micro.transport', `metadata ${k} must be a string`);
      clean[k.toLowerCase()] = v;
    }
    meta.md = clean;
  }
  if (typeof tp === 'string') meta.tp = tp;
  return meta;
}

/**
 * Splits a byte stream into frames. Chunks are kept in a list until a whole frame is
 * there, so a large frame arriving in many chunks is copied once, not once per chunk.
 * A frame longer than `maxFrame` is not buffered: `onOversize` is told its type and id
 * and its bytes are skipped as they arrive.
 */
export class FrameReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private skip = 0;

  constructor(
    private readonly maxFrame: number,
    private readonly onFrame: (frame: Buffer) => void,
    private readonly onOversize: (type: number, id: number, length: number) => void,
  ) {}

  push(chunk: Buffer): void {
    if (this.skip > 0) {
      if (chunk.length <= this.skip) {
        this.skip -= chunk.length;
        return;
      }
      chunk = chunk.subarray(this.skip);
      this.skip = 0;
    }
    let buf: Buffer;
    if (this.buffered === 0) {
      buf = chunk;
    } else {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
      // wait for the whole frame before joining the chunks
      const first = this.chunks[0] as Buffer;
      if (first.length >= 4) {
        const need = first.readUInt32BE(0) + 4;
        if (need <= this.maxFrame + 4 && this.buffered < need) return;
      } else if (this.buffered < 4) {
        return;
      }
      buf = Buffer.concat(this.chunks, this.buffered);
      this.chunks = [];
      this.buffered = 0;
    }
    let off = 0;
    while (buf.length - off >= 4) {
      const len = buf.readUInt32BE(off);
      if (len > this.maxFrame) {
        // wait for its type and id, answer on that id, then skip the rest of the frame
        if (buf.length - off < 4 + COMMON_HEADER) break;
        this.onOversize(buf[off + 4] as number, buf.readUInt32BE(off + 6), len);
        const available = buf.length - off - 4;
        if (available >= len) {
          off += 4 + len;
          continue;
        }
        this.skip = len - available;
        return;
      }
      if (buf.length - off - 4 < len) break;
      this.onFrame(buf.subarray(off + 4, off + 4 + len));
      off += 4 + len;
    }
    if (off < buf.length) {
      const rest = buf.subarray(off);
      this.chunks = [rest];
      this.buffered = rest.length;
    }
  }
}

/**
 * The id of the errors a server answers before it runs anything (draining, too many
 * calls): the client retries such a call on another node, whatever the endpoint.
 */
export const REFUSED = 'micro.transport.refused';
