import { admit, quotaExceeded, type Limits } from '../quota/limits.js';

/**
 * The store's part of quotas: each engine counts the bytes and records of a namespace in
 * a `store_usage` row of its own database, kept by triggers on `records` and `blobs`, so
 * that every path that changes them (write, overwrite, delete, purge, blob put) changes the
 * count in the same transaction. A write that grows a namespace checks the count against
 * the limits inside that transaction, under a lock per namespace, so of concurrent writes
 * with room for k exactly k pass.
 */

/** The limits of a namespace (see Quotas.limits), or none to write unchecked. */
export type StoreLimits = (namespace: string) => Promise<Limits>;

/** What a namespace has in the store. */
export interface StoreUsage {
  storeBytes: number;
  storeRecords: number;
  blobBytes: number;
}

/** A record's size as the engines count it: the UTF-8 bytes of its key, its JSON value and its JSON metadata. */
export function recordSize(key: string, value: string, metadata: string | null): number {
  return Buffer.byteLength(key) + Buffer.byteLength(value) + (metadata === null ? 0 : Buffer.byteLength(metadata));
}

/** The same size in SQL, over a row's columns (`prefix` NEW. or OLD. in a trigger); SQLite and PostgreSQL alike. */
export function sqlSize(prefix: string, bytes: (column: string) => string): string {
  return `(${bytes(`${prefix}key`)} + ${bytes(`${prefix}value`)} + coalesce(${bytes(`${prefix}metadata`)}, 0))`;
}

/**
 * Refuses a write that would take the namespace past a limit: `old` is the size of the
 * record it replaces (undefined when new). A write that shrinks or keeps the size passes
 * even over a lowered limit, so a tenant over its quota can always tidy up.
 */
export function admitWrite(namespace: string, usage: StoreUsage, size: number, old: number | undefined, limits: Limits): void {
  if (old === undefined) admit('storeRecords', usage.storeRecords, 1, limits.storeRecords, namespace);
  admit('storeBytes', usage.storeBytes, size - (old ?? 0), limits.storeBytes, namespace);
}

/**
 * Refuses a blob put that would take the namespace past `blobBytes`: `old` is the size of
 * the blob it replaces (0 when new). Checked in the transaction that points the blob's row
 * to the new bytes, so of concurrent puts with room for k exactly k pass.
 */
export function admitBlob(namespace: string, usage: StoreUsage, size: number, old: number, limits: Limits): void {
  admit('blobBytes', usage.blobBytes, size - old, limits.blobBytes, namespace);
}

/**
 * The largest blob that could ever fit while a put streams (Infinity: unlimited): the blob
 * it replaces is part of the usage, so a blob larger than the whole limit is refused at
 * once rather than after the upload.
 */
export function blobCeiling(limits: Limits | undefined): number {
  return limits?.blobBytes ?? Infinity;
}

/** The refusal of a blob larger than the whole limit, naming what the namespace uses now. */
export function blobTooLargeForQuota(namespace: string, usage: StoreUsage, limits: Limits): Error {
  return quotaExceeded('blobBytes', usage.blobBytes, limits.blobBytes ?? 0, namespace);
}
