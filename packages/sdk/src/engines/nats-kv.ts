/*
 * What the engines on JetStream key-value buckets share (the registry in
 * registry/nats-kv.ts, the config of micro server in server/src/config/kv.ts):
 *
 * - key segments: any name made safe for a KV key, reversibly;
 * - values: JSON, deflated when large, bounded by the server's max_payload;
 * - the connection (the process's shared one, see transport/nats/link.ts): whether it is up
 *   now (calls fail fast with a 503 while it is not), and NATS errors as MicroErrors.
 */

import { createHash } from 'node:crypto';
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import type { NatsConnection } from '@nats-io/transport-node';
import { Kvm, type KV, type KvOptions } from '@nats-io/kv';
import { MicroError, PayloadTooLarge, ServiceUnavailable } from '../errors/errors.js';
import { redactUrl } from './profile.js';
import { acquireLink, type LinkOptions } from '../transport/nats/link.js';

// ---- keys ----------------------------------------------------------------------------

/** An encoded segment longer than this is shortened with a hash (NATS subjects are bounded by max_control_line, 4 KiB by default). */
const MAX_SEGMENT = 160;
const KEEP = /^[A-Za-z0-9_-]$/;

/**
 * One token of a KV key from any non-empty name: letters, digits, `_` and `-` stay; every
 * other UTF-8 byte becomes `=XX` (so `.`, `*`, `>`, spaces, `/` and `=` itself cannot
 * appear, and no token is empty). Reversible with `decodeKeySegment`, except for names
 * whose encoding is longer than 160 characters: those end in `/` and a hash of the name
 * (`/` never appears otherwise), and the name is read from the value.
 */
export function encodeKeySegment(name: string): string {
  let out = '';
  for (const ch of name) {
    if (KEEP.test(ch)) out += ch;
    else for (const byte of Buffer.from(ch, 'utf8')) out += '=' + byte.toString(16).toUpperCase().padStart(2, '0');
  }
  if (out.length > MAX_SEGMENT) {
    // cut before a partial `=XX`, then the hash of the whole name keeps names apart
    let cut = out.slice(0, 100);
    const eq = cut.lastIndexOf('=');
    if (eq > cut.length - 3) cut = cut.slice(0, eq);
    out = `${cut}/${createHash('sha256').update(name, 'utf8').digest('hex').slice(0, 40)}`;
  }
  return out;
}

/** The name a segment encodes; undefined for a shortened (hashed) or malformed one. */
export function decodeKeySegment(segment: string): string | undefined {
  if (segment.length === 0 || !/^(?:[A-Za-z0-9_-]|=[0-9A-F]{2})+$/.test(segment)) return undefined;
  const bytes: number[] = [];
  for (let i = 0; i < segment.length; ) {
    if (segment[i] === '=') {
      bytes.push(parseInt(segment.slice(i + 1, i + 3), 16));
      i += 3;
    } else bytes.push(segment.charCodeAt(i++));
  }
  const text = Buffer.from(bytes).toString('utf8');
  // a byte sequence that is not UTF-8 was not made by encodeKeySegment
  return encodeKeySegment(text) === segment ? text : undefined;
}

// ---- values --------------------------------------------------------------------------

/** Values up to this size are stored as plain JSON (readable with `nats kv get`); larger ones deflated. */
const PLAIN_BYTES = 16 * 1024;
/** The first byte of a deflated value: never the first byte of JSON text. */
const DEFLATED = 0x01;
/** A value never inflates past this (a deflate bomb in the bucket cannot exhaust memory). */
const MAX_INFLATED = 16 * 1024 * 1024;

/** JSON text as a KV value: plain when small, deflated when large (JSON compresses well; config documents reach 1 MiB). */
export function packValue(json: string): Uint8Array {
  const bytes = Buffer.from(json, 'utf8');
  if (bytes.length <= PLAIN_BYTES) return bytes;
  return Buffer.concat([Buffer.of(DEFLATED), deflateRawSync(bytes)]);
}

/** The JSON text of a value made by packValue; throws on anything else. */
export function unpackValue(value: Uint8Array): string {
  if (value.length > 0 && value[0] === DEFLATED) {
    return inflateRawSync(value.subarray(1), { maxOutputLength: MAX_INFLATED }).toString('utf8');
  }
  return Buffer.from(value.buffer, value.byteOffset, value.length).toString('utf8');
}

/**
 * Refuses a value the NATS server would refuse (max_payload, 1 MiB by default), with a
 * 413 that says how big it is, before anything is sent. `headroom` covers the headers.
 */
export function checkValueSize(nc: NatsConnection, value: Uint8Array, errorId: string, what: string, headroom = 512): void {
  const max = (nc.info?.max_payload ?? 1024 * 1024) - headroom;
  if (value.length > max) {
    throw PayloadTooLarge(errorId, `${what} is ${value.length} bytes as stored in NATS: at most ${max} (the server's max_payload)`);
  }
}

// ---- buckets ---------------------------------------------------------------------------

/**
 * Opens a KV bucket, creating it when it is not there. The options apply only when it is
 * created (the first node wins); an existing bucket is used as it is.
 */
export async function openBucket(nc: NatsConnection, name: string, options: Partial<KvOptions> = {}): Promise<KV> {
  const kvm = new Kvm(nc);
  try {
    // binds to the bucket when it is there (its options unchanged), else creates it
    return await kvm.create(name, { history: 1, ...options });
  } catch (err) {
    // another node made it between our look and our create: bind to that one
    if (/already in use/i.test(err instanceof Error ? err.message : '')) return kvm.create(name, { history: 1, ...options });
    throw err;
  }
}

/** A KV update or create that failed because the key changed since it was read (JetStream 10071, or the key exists). */
export function isStaleWrite(err: unknown): boolean {
  const e = err as { message?: string; code?: unknown; api_error?: { err_code?: number } } | undefined;
  const code = e?.api_error?.err_code ?? (typeof e?.code === 'number' ? e.code : undefined);
  return code === 10071 || /wrong last sequence|key exists/i.test(e?.message ?? '');
}

// ---- the connection ----------------------------------------------------------------------

/**
 * The process's shared NATS connection to `url` (transport/nats/link.ts: opened with
 * connectWithBackoff, a clear message naming the URL when NATS is not there, reconnecting
 * for ever afterwards), with one reference for the caller: `release()` it when done.
 */
export async function acquireNats(url: string, options: LinkOptions = {}): Promise<{ nc: NatsConnection; release(): void }> {
  const link = await acquireLink(url, options);
  let released = false;
  return {
    nc: link.nc,
    release: () => {
      if (released) return;
      released = true;
      link.release();
    },
  };
}

const health = new WeakMap<NatsConnection, { up: boolean }>();

/** Follows a connection's status: `up` is false from a disconnect until the reconnect. */
function healthOf(nc: NatsConnection): { up: boolean } {
  let h = health.get(nc);
  if (!h) {
    const state = { up: true };
    h = state;
    health.set(nc, state);
    void (async () => {
      for await (const s of nc.status()) {
        if (s.type === 'disconnect' || s.type === 'reconnecting') state.up = false;
        else if (s.type === 'reconnect') state.up = true;
      }
    })().catch(() => undefined);
  }
  return h;
}

/** Starts following the connection's status (call once, right after connecting). */
export function trackConnection(nc: NatsConnection): void {
  healthOf(nc);
}

/** Throws a 503 at once when NATS is not reachable now, instead of letting a call wait for its timeout. */
export function checkConnected(nc: NatsConnection, errorId: string, what: string): void {
  if (nc.isClosed()) throw ServiceUnavailable(errorId, `${what}: the NATS connection is closed`);
  if (!healthOf(nc).up) throw ServiceUnavailable(errorId, `${what}: NATS at ${redactUrl(nc.getServer())} is unreachable; retry once it is back`);
}

/** A failure of a NATS call as a MicroError: MicroErrors pass, anything else is a 503 naming what failed. */
export function natsError(err: unknown, errorId: string, what: string): MicroError {
  if (err instanceof MicroError) return err;
  const reason = err instanceof Error ? err.message : String(err);
  return ServiceUnavailable(errorId, `${what}: NATS failed (${reason}); retry once it is back`);
}
