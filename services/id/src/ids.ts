import { randomBytes, randomUUID } from 'node:crypto';
import { nanoid } from 'nanoid';
import { monotonicFactory } from 'ulid';

/*
 * The id kinds that need no coordination: random or time-and-random, each as its
 * specification lays it out. snowflake and bigflake (flake.ts) need a worker id.
 */

/** RFC 9562 version 4: 122 random bits. */
export function uuid(): string {
  return randomUUID();
}

const nextUlid = monotonicFactory();

/** ULID: 48 bits of ms time, 80 random bits, Crockford base32 (26 characters), monotonic within a ms. */
export function ulid(now: number = Date.now()): string {
  return nextUlid(now);
}

/** nanoid: 21 characters of `A-Za-z0-9_-` (126 random bits). */
export function nanoId(): string {
  return nanoid();
}

// ---- ksuid ---------------------------------------------------------------------------

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
/** KSUID's epoch: 2014-05-13T16:53:20Z, in seconds since 1970. */
export const KSUID_EPOCH = 1_400_000_000;

/** The 27 base62 characters of a 20-byte KSUID (a 160-bit number, zero-padded). */
export function ksuidEncode(bytes: Uint8Array): string {
  let n = BigInt(`0x${Buffer.from(bytes).toString('hex')}`);
  let out = '';
  while (n > 0n) {
    out = BASE62[Number(n % 62n)] + out;
    n /= 62n;
  }
  return out.padStart(27, '0');
}

/** The 20 bytes of a KSUID string. */
export function ksuidDecode(text: string): Buffer {
  let n = 0n;
  for (const c of text) n = n * 62n + BigInt(BASE62.indexOf(c));
  return Buffer.from(n.toString(16).padStart(40, '0'), 'hex');
}

/** KSUID: 32 bits of seconds since KSUID_EPOCH, then 128 random bits; 27 characters of base62. */
export function ksuid(now: number = Date.now()): string {
  const bytes = Buffer.alloc(20);
  bytes.writeUInt32BE(Math.floor(now / 1000) - KSUID_EPOCH, 0);
  randomBytes(16).copy(bytes, 4);
  return ksuidEncode(bytes);
}

// ---- xid -----------------------------------------------------------------------------

const BASE32HEX = '0123456789abcdefghijklmnopqrstuv';

/** The 20 characters of a 12-byte xid: base32hex, lower case, no padding. */
export function xidEncode(bytes: Uint8Array): string {
  let n = BigInt(`0x${Buffer.from(bytes).toString('hex')}`) << 4n; // 96 bits → 100 = 20 × 5
  let out = '';
  for (let i = 0; i < 20; i++) {
    out = BASE32HEX[Number(n & 31n)] + out;
    n >>= 5n;
  }
  return out;
}

/** The 12 bytes of an xid string. */
export function xidDecode(text: string): Buffer {
  let n = 0n;
  for (const c of text) n = (n << 5n) | BigInt(BASE32HEX.indexOf(c));
  return Buffer.from((n >> 4n).toString(16).padStart(24, '0'), 'hex');
}

/** What makes this process's xids its own: 3 random bytes (xid's "machine id") and the pid. */
const xidMachine = randomBytes(3);
let xidCounter = randomBytes(3).readUIntBE(0, 3);

/** xid: 4 bytes of seconds, 3 of machine, 2 of pid, 3 of a counter that starts at random. */
export function xid(now: number = Date.now()): string {
  const bytes = Buffer.alloc(12);
  bytes.writeUInt32BE(Math.floor(now / 1000) >>> 0, 0);
  xidMachine.copy(bytes, 4);
  bytes.writeUInt16BE(process.pid & 0xffff, 7);
  xidCounter = (xidCounter + 1) & 0xffffff;
  bytes.writeUIntBE(xidCounter, 9, 3);
  return xidEncode(bytes);
}

// ---- shortid -------------------------------------------------------------------------

/** shortid's alphabet: 64 URL-safe symbols. */
export const SHORTID_ALPHABET = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_-';

/**
 * shortid: 9 characters of SHORTID_ALPHABET (54 random bits), as the length of the ids
 * M3O's shortid made. Short ids collide sooner than the others (one in a million after
 * about 190,000 ids): for keys that must never collide, use uuid, ulid or a flake.
 */
export function shortid(): string {
  const bytes = randomBytes(9);
  let out = '';
  for (const b of bytes) out += SHORTID_ALPHABET[b & 63];
  return out;
}
