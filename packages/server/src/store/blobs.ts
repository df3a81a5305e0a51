import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, rmSync } from 'node:fs';
import { open, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type Database from 'better-sqlite3';
import { errors } from '@micro/sdk';
import { BLOB_CHUNK_SIZE, syncDir, storeEngine as E, type BlobData, type BlobInfo, type BlobListOptions, type BlobOptions, type BlobStore } from '@micro/sdk';
import { prefixRange, type Params } from './sqlite.js';
import { admitBlob, blobCeiling, blobTooLargeForQuota, type StoreLimits, type StoreUsage } from './usage.js';
import type { Limits } from '../quota/limits.js';

/**
 * Blobs as files under <dataDir>/blobs, each found through a row of the `blobs` table of
 * store.db (namespace, key → file, size, sha256, updated).
 *
 * - A put streams into a new file with a random name, fsyncs it and its folder, and only
 *   then commits the row that points to it (replacing the old row in one transaction);
 *   the file the old row pointed to is deleted after the commit. So a blob is visible
 *   only once all of it is durable, and a put that fails half way (too large, cancelled,
 *   the source broke, a crash) leaves at most an unreferenced file.
 * - Unreferenced files (of puts that died, of deletes cut short by a crash) are removed
 *   when the engine opens, before any put can run: one micro server per home.
 * - A file is never changed once referenced, so a get streams it without a lock: a put
 *   or delete that replaces it meanwhile unlinks it, and the open file reads on whole.
 */

export interface FileBlobStoreOptions {
  /** store.db, opened by SqliteStore (its schema holds the blobs table) */
  db: Database.Database;
  /** where the files go, e.g. <home>/data/blobs (0700) */
  dir: string;
  /** the largest blob, bytes (default 64 MiB) */
  maxSize?: number;
  /** the quota limits a put must stay within (`blobBytes`; default none: unchecked) */
  limits?: StoreLimits;
  now?: () => number;
}

interface Row {
  key: string;
  file: string;
  size: number;
  sha256: string;
  updated: number;
}


export class FileBlobStore implements BlobStore {
  readonly name = 'file';
  readonly dir: string;
  private readonly maxSize: number;
  private readonly now: () => number;
  private readonly lists = new Map<string, Database.Statement<Params, Row>>();
  private readonly stmt: {
    get: Database.Statement<[string, string], Row>;
    upsert: Database.Statement<[string, string, string, number, string, number]>;
    delete: Database.Statement<[string, string]>;
    files: Database.Statement<[], { file: string }>;
  };
  private readonly replace: (namespace: string, row: Row, limits: Limits | undefined) => string | undefined;
  private readonly usage: Database.Statement<[string], StoreUsage>;
  private readonly remove: (namespace: string, key: string) => string | undefined;
  private closed = false;

  constructor(private readonly options: FileBlobStoreOptions) {
    this.dir = options.dir;
    this.maxSize = E.checkMaxSize(options.maxSize);
    this.now = options.now ?? Date.now;
    const db = options.db;
    this.stmt = {
      get: db.prepare('SELECT key, file, size, sha256, updated FROM blobs WHERE namespace = ? AND key = ?'),
      upsert: db.prepare(
        `INSERT INTO blobs (namespace, key, file, size, sha256, updated) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (namespace, key) DO UPDATE SET file = excluded.file, size = excluded.size, sha256 = excluded.sha256, updated = excluded.updated`,
      ),
      delete: db.prepare('DELETE FROM blobs WHERE namespace = ? AND key = ?'),
      files: db.prepare('SELECT file FROM blobs'),
    };
    // the row swap and the lookup of the file it replaced, in one transaction
    this.usage = db.prepare('SELECT bytes AS storeBytes, records AS storeRecords, blob_bytes AS blobBytes FROM store_usage WHERE namespace = ?');
    this.replace = db.transaction((namespace: string, row: Row, limits: Limits | undefined) => {
      const old = this.stmt.get.get(namespace, row.key);
      if (limits) admitBlob(namespace, this.usageOf(namespace), row.size, old?.size ?? 0, limits);
      this.stmt.upsert.run(namespace, row.key, row.file, row.size, row.sha256, row.updated);
      return old?.file;
    });
    this.remove = db.transaction((namespace: string, key: string) => {
      const old = this.stmt.get.get(namespace, key);
      if (old) this.stmt.delete.run(namespace, key);
      return old?.file;
    });
    this.removeOrphans();
  }

  async put(key: string, data: BlobData, options: BlobOptions = {}): Promise<BlobInfo> {
    this.checkOpen();
    const k = E.checkKey(key);
    const namespace = E.checkNamespace(options.namespace);
    const file = randomBytes(16).toString('hex');
    const path = join(this.dir, file);
    const limits = await this.options.limits?.(namespace);
    const ceiling = blobCeiling(limits);
    let handle: FileHandle | undefined = await open(path, 'wx', 0o600);
    let committed = false;
    try {
      const hash = createHash('sha256');
      let size = 0;
      for await (const chunk of E.blobChunks(data)) {
        size += chunk.length;
        if (size > this.maxSize) throw E.blobTooLarge(this.maxSize);
        if (size > ceiling) throw blobTooLargeForQuota(namespace, this.usageOf(namespace), limits as Limits);
        hash.update(chunk);
        await writeAll(handle, chunk);
      }
      await handle.sync();
      await handle.close();
      handle = undefined;
      // the file's name is durable in its folder before any row points to it
      syncDir(this.dir);
      this.checkOpen();
      const row: Row = { key: k, file, size, sha256: hash.digest('hex'), updated: this.now() };
      const old = this.replace(namespace, row, limits);
      committed = true;
      if (old) await unlink(join(this.dir, old)).catch(() => undefined);
      return { key: row.key, size: row.size, sha256: row.sha256, updated: row.updated };
    } finally {
      if (handle) await handle.close().catch(() => undefined);
      if (!committed) await unlink(path).catch(() => undefined);
    }
  }

  get(key: string, options: BlobOptions = {}): AsyncIterable<Uint8Array> {
    // checked at once, so a bad key fails the call rather than the first read
    return this.read(E.checkNamespace(options.namespace), E.checkKey(key));
  }

  private async *read(namespace: string, key: string): AsyncGenerator<Uint8Array> {
    const { handle, size } = await this.openBlob(namespace, key);
    try {
      let position = 0;
      while (position < size) {
        const buffer = Buffer.allocUnsafe(Math.min(BLOB_CHUNK_SIZE, size - position));
        const { bytesRead } = await handle.read(buffer, 0, buffer.length, position);
        if (bytesRead === 0) throw errors.InternalServerError(E.STORE_ERROR_ID, `blob "${E.printable(key)}" is shorter than its index says`);
        position += bytesRead;
        yield buffer.subarray(0, bytesRead);
      }
    } finally {
      await handle.close();
    }
  }

  private usageOf(namespace: string): StoreUsage {
    return this.usage.get(namespace) ?? { storeBytes: 0, storeRecords: 0, blobBytes: 0 };
  }

  async delete(key: string, options: BlobOptions = {}): Promise<void> {
    this.checkOpen();
    const k = E.checkKey(key);
    const namespace = E.checkNamespace(options.namespace);
    const file = this.remove(namespace, k);
    if (file) await unlink(join(this.dir, file)).catch(() => undefined);
  }

  async list(options: BlobListOptions = {}): Promise<BlobInfo[]> {
    this.checkOpen();
    const scan = E.blobListScan(options);
    const namespace = E.checkNamespace(options.namespace);
    const where = ['namespace = ?'];
    const params: Params = [namespace];
    if (scan.prefix) prefixRange('key', scan.prefix, where, params);
    if (scan.after !== undefined) {
      where.push('key > ?');
      params.push(scan.after);
    }
    params.push(scan.limit, scan.offset);
    const sql = `SELECT key, file, size, sha256, updated FROM blobs WHERE ${where.join(' AND ')} ORDER BY key LIMIT ? OFFSET ?`;
    let stmt = this.lists.get(sql);
    if (!stmt) {
      stmt = this.options.db.prepare<Params, Row>(sql);
      this.lists.set(sql, stmt);
    }
    return stmt.all(...params).map((r) => ({ key: r.key, size: r.size, sha256: r.sha256, updated: r.updated }));
  }

  /**
   * Deletes every blob of a namespace (purge/): the rows in one transaction (the usage
   * triggers count them out), then their files; a crash between the two leaves files no
   * row points to, which the next open removes.
   */
  async purgeNamespace(namespace: string): Promise<number> {
    this.checkOpen();
    const ns = E.checkNamespace(namespace);
    const db = this.options.db;
    const files = db.transaction(() => {
      const rows = db.prepare<[string], { file: string }>('SELECT file FROM blobs WHERE namespace = ?').all(ns);
      db.prepare('DELETE FROM blobs WHERE namespace = ?').run(ns);
      return rows.map((r) => r.file);
    })();
    for (const file of files) await unlink(join(this.dir, file)).catch(() => undefined);
    return files.length;
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  /** The open file of a blob; a 404 when there is none (also when it went just now). */
  private async openBlob(namespace: string, key: string): Promise<{ handle: FileHandle; size: number }> {
    // twice: a put or delete may unlink the file between the lookup and the open
    for (let attempt = 0; attempt < 2; attempt++) {
      this.checkOpen();
      const row = this.stmt.get.get(namespace, key);
      if (!row) break;
      try {
        return { handle: await open(join(this.dir, row.file), 'r'), size: row.size };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
    throw E.blobNotFound(key, namespace);
  }

  /** Files no row points to: puts that died before their commit, deletes cut short. */
  private removeOrphans(): void {
    const referenced = new Set(this.stmt.files.all().map((r) => r.file));
    for (const name of readdirSync(this.dir)) {
      if (!referenced.has(name)) rmSync(join(this.dir, name), { force: true, recursive: true });
    }
  }

  private checkOpen(): void {
    if (this.closed) throw errors.ServiceUnavailable(E.STORE_ERROR_ID, 'blob store is closed');
  }
}

async function writeAll(handle: FileHandle, chunk: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < chunk.length) {
    const { bytesWritten } = await handle.write(chunk, offset, chunk.length - offset);
    offset += bytesWritten;
  }
}
