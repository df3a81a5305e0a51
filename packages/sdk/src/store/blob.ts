/**
 * The blob store: large values (files, images, archives) streamed in and out in chunks,
 * as Go Micro's store.BlobStore. A blob lives at (namespace, key); keys follow the rules
 * of store keys and sort the same way.
 *
 * - `put` reads the data as it comes and never holds more than the engine needs; a
 *   blob is visible only once all of it is stored durably, and a put that fails half
 *   way (too large, cancelled, the data source throws) leaves nothing visible — the
 *   blob that was there before stays as it was.
 * - The size of a blob is bounded (64 MiB by default; micro server can be told another).
 * - `get` streams the blob in chunks; a missing blob is a 404 on the first read.
 */

import { BadRequest, NotFound, PayloadTooLarge } from '../errors/errors.js';
import { STORE_ERROR_ID, checkKey, checkLimit, checkOffset, printable } from './util.js';

export interface BlobInfo {
  key: string;
  /** bytes */
  size: number;
  /** hex SHA-256 of the content */
  sha256: string;
  /** when it was written, epoch ms */
  updated: number;
}

export interface BlobOptions {
  /** default: the store's (memory: `micro`; remote: the caller's own) */
  namespace?: string;
}

export interface BlobListOptions extends BlobOptions {
  prefix?: string;
  /** keys strictly after this one (a cursor: the last key of the previous page) */
  after?: string;
  /** default 100, at most 1000 */
  limit?: number;
  /** default 0, at most 100,000 */
  offset?: number;
}

export type BlobData = AsyncIterable<Uint8Array> | Iterable<Uint8Array> | Uint8Array;

export interface BlobStore {
  readonly name: string;
  /** Stores the blob (replacing any at `key`); durable once this resolves. */
  put(key: string, data: BlobData, options?: BlobOptions): Promise<BlobInfo>;
  /** The blob's content in chunks; a 404 on the first read when there is none. */
  get(key: string, options?: BlobOptions): AsyncIterable<Uint8Array>;
  /** Deletes the blob; deleting a missing one is not an error. */
  delete(key: string, options?: BlobOptions): Promise<void>;
  /** The blobs of the namespace in key order. */
  list(options?: BlobListOptions): Promise<BlobInfo[]>;
  close?(): Promise<void>;
}

/** 64 MiB: the default bound on the size of one blob. */
export const DEFAULT_BLOB_MAX_SIZE = 64 * 1024 * 1024;
/** 64 KiB: the size of the chunks blobs travel in. */
export const BLOB_CHUNK_SIZE = 64 * 1024;

/** Reads all of a blob into one buffer (for small blobs and tests). */
export async function readBlob(chunks: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const chunk of chunks) parts.push(chunk);
  return Buffer.concat(parts);
}

/**
 * The chunks of blob data as they come, each checked to be bytes and cut to at most
 * `max` bytes (the remote store sends 64 KiB messages whatever the source yields).
 */
export async function* blobChunks(data: BlobData, max = Infinity): AsyncGenerator<Uint8Array> {
  if (data instanceof Uint8Array) {
    yield* cut(data, max);
    return;
  }
  const iterable = data as Partial<AsyncIterable<unknown> & Iterable<unknown>> | null | undefined;
  if (!iterable || typeof iterable !== 'object' || (typeof iterable[Symbol.asyncIterator] !== 'function' && typeof iterable[Symbol.iterator] !== 'function')) {
    throw BadRequest(STORE_ERROR_ID, 'blob data must be a Uint8Array or an iterable of Uint8Array chunks');
  }
  for await (const chunk of data as AsyncIterable<unknown>) {
    if (!(chunk instanceof Uint8Array)) throw BadRequest(STORE_ERROR_ID, 'blob data must yield Uint8Array chunks');
    yield* cut(chunk, max);
  }
}

function* cut(chunk: Uint8Array, max: number): Generator<Uint8Array> {
  if (chunk.length <= max) {
    if (chunk.length > 0) yield chunk;
    return;
  }
  for (let i = 0; i < chunk.length; i += max) yield chunk.subarray(i, Math.min(chunk.length, i + max));
}

export function blobTooLarge(max: number): Error {
  return PayloadTooLarge(STORE_ERROR_ID, `blob exceeds the limit of ${max} bytes`);
}

export function blobNotFound(key: string, namespace: string | undefined): Error {
  return NotFound(STORE_ERROR_ID, `blob "${printable(key)}" not found${namespace ? ` in namespace ${namespace}` : ''}`);
}

/** The bound on blob sizes an engine is given: a positive whole number of bytes. */
export function checkMaxSize(value: number | undefined): number {
  if (value === undefined) return DEFAULT_BLOB_MAX_SIZE;
  if (!Number.isSafeInteger(value) || value < 1) throw new TypeError(`blob maxSize must be a positive number of bytes, not ${value}`);
  return value;
}

export interface BlobScan {
  prefix: string;
  after: string | undefined;
  limit: number;
  offset: number;
}

export function blobListScan(options: BlobListOptions): BlobScan {
  return {
    prefix: options.prefix === undefined ? '' : checkKey(options.prefix, 'prefix', true),
    after: options.after === undefined ? undefined : checkKey(options.after, 'after', true),
    limit: checkLimit(options.limit),
    offset: checkOffset(options.offset),
  };
}
