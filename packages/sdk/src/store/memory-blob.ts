/*
 * An in-process blob store, for unit tests: the same bounds and errors as the durable
 * one. A put collects its chunks aside and only then replaces the blob, so a put that
 * fails half way leaves nothing visible; a get streams the content it found when it
 * started, whatever happens to the key meanwhile.
 */

import { createHash } from 'node:crypto';
import { ServiceUnavailable } from '../errors/errors.js';
import {
  BLOB_CHUNK_SIZE,
  blobChunks,
  blobListScan,
  blobNotFound,
  blobTooLarge,
  checkMaxSize,
  type BlobData,
  type BlobInfo,
  type BlobListOptions,
  type BlobOptions,
  type BlobStore,
} from './blob.js';
import { STORE_ERROR_ID, checkKey, checkNamespace, compareKeys } from './util.js';

export interface MemoryBlobStoreOptions {
  /** the largest blob, bytes (default 64 MiB) */
  maxSize?: number;
  now?: () => number;
}

interface Blob {
  data: Buffer;
  info: BlobInfo;
}

export class MemoryBlobStore implements BlobStore {
  readonly name = 'memory';
  private readonly blobs = new Map<string, Map<string, Blob>>();
  private readonly maxSize: number;
  private readonly now: () => number;
  private closed = false;

  constructor(options: MemoryBlobStoreOptions = {}) {
    this.maxSize = checkMaxSize(options.maxSize);
    this.now = options.now ?? Date.now;
  }

  async put(key: string, data: BlobData, options: BlobOptions = {}): Promise<BlobInfo> {
    this.checkOpen();
    const k = checkKey(key);
    const namespace = checkNamespace(options.namespace);
    const hash = createHash('sha256');
    const parts: Buffer[] = [];
    let size = 0;
    for await (const chunk of blobChunks(data)) {
      size += chunk.length;
      if (size > this.maxSize) throw blobTooLarge(this.maxSize);
      hash.update(chunk);
      // a copy: the caller may reuse its buffer
      parts.push(Buffer.from(chunk));
    }
    this.checkOpen();
    const info: BlobInfo = { key: k, size, sha256: hash.digest('hex'), updated: this.now() };
    let space = this.blobs.get(namespace);
    if (!space) {
      space = new Map();
      this.blobs.set(namespace, space);
    }
    space.set(k, { data: Buffer.concat(parts, size), info });
    return { ...info };
  }

  get(key: string, options: BlobOptions = {}): AsyncIterable<Uint8Array> {
    // checked at once, so a bad key fails the call rather than the first read
    return this.read(checkNamespace(options.namespace), checkKey(key));
  }

  private async *read(namespace: string, key: string): AsyncGenerator<Uint8Array> {
    this.checkOpen();
    const blob = this.blobs.get(namespace)?.get(key);
    if (!blob) throw blobNotFound(key, namespace);
    for (let i = 0; i < blob.data.length; i += BLOB_CHUNK_SIZE) {
      yield Buffer.from(blob.data.subarray(i, Math.min(blob.data.length, i + BLOB_CHUNK_SIZE)));
    }
  }

  async delete(key: string, options: BlobOptions = {}): Promise<void> {
    this.checkOpen();
    const k = checkKey(key);
    const namespace = checkNamespace(options.namespace);
    const space = this.blobs.get(namespace);
    space?.delete(k);
    if (space?.size === 0) this.blobs.delete(namespace);
  }

  async list(options: BlobListOptions = {}): Promise<BlobInfo[]> {
    this.checkOpen();
    const scan = blobListScan(options);
    const namespace = checkNamespace(options.namespace);
    const space = this.blobs.get(namespace);
    if (!space) return [];
    const keys = [...space.keys()].filter((k) => k.startsWith(scan.prefix) && (scan.after === undefined || compareKeys(k, scan.after) > 0)).sort(compareKeys);
    return keys.slice(scan.offset, scan.offset + scan.limit).map((k) => ({ ...(space.get(k) as Blob).info }));
  }

  async close(): Promise<void> {
    this.closed = true;
    this.blobs.clear();
  }

  private checkOpen(): void {
    if (this.closed) throw ServiceUnavailable(STORE_ERROR_ID, 'blob store is closed');
  }
}
