import type { Client } from '../client/client.js';
import { createClient, type TypedClient } from '../client/typed.js';
import { BLOB_CHUNK_SIZE, blobChunks, type BlobData, type BlobInfo, type BlobListOptions, type BlobOptions, type BlobStore } from './blob.js';
import { storeService } from './definition.js';
import type { CountOptions, DeleteOptions, QueryOptions, ListOptions, NamesOptions, ReadOptions, Store, StoreDefaults, StoreRecord, TablesOptions, WriteOptions } from './store.js';
import { STORE_LIMITS, checkKey, checkMetadata, checkValue } from './util.js';
import { checkQuery } from './query.js';

/**
 * The store service of a `micro server`, reached through `client` (whose address is the
 * server's). What services use when MICRO_SERVER is set.
 *
 * Values are checked here before they are sent: JSON on the wire would silently turn
 * NaN into null or drop an undefined array element, and the server could not tell.
 * Answers the server cut to fit one frame (`more`) are continued after the last key, so
 * a read or list returns what the same call to any other engine returns.
 */
export interface RemoteStoreOptions extends StoreDefaults {
  /** the namespace of calls that name none (default: the caller's own) */
  namespace?: string;
}

export class RemoteStore implements Store {
  readonly name = 'remote';
  private readonly api: TypedClient<typeof storeService>;

  constructor(
    client: Client,
    private readonly defaults: RemoteStoreOptions = {},
  ) {
    this.api = createClient(storeService, client);
  }

  async read(key: string, options: ReadOptions = {}): Promise<StoreRecord[]> {
    const request = { ...this.scope(options), key, prefix: options.prefix, suffix: options.suffix, after: options.after, before: options.before, order: options.order, limit: options.limit, offset: options.offset };
    const limit = options.limit ?? STORE_LIMITS.defaultLimit;
    const out: StoreRecord[] = [];
    for (;;) {
      const { records, more } = await this.api.Read(request);
      out.push(...records);
      const last = records.at(-1);
      if (!more || !last || out.length >= limit) return out;
      continueAfter(request, last.key, limit - out.length);
    }
  }

  async write(record: StoreRecord, options: WriteOptions = {}): Promise<void> {
    checkValue(record?.value);
    checkMetadata(record?.metadata);
    await this.api.Write({ ...this.scope(options), record, ttl: options.ttl });
  }

  async delete(key: string, options: DeleteOptions = {}): Promise<void> {
    await this.api.Delete({ ...this.scope(options), key });
  }

  async list(options: ListOptions = {}): Promise<string[]> {
    const request = { ...this.scope(options), prefix: options.prefix, suffix: options.suffix, after: options.after, before: options.before, order: options.order, limit: options.limit, offset: options.offset };
    const limit = options.limit ?? STORE_LIMITS.defaultLimit;
    const out: string[] = [];
    for (;;) {
      const { keys, more } = await this.api.List(request);
      out.push(...keys);
      const last = keys.at(-1);
      if (!more || last === undefined || out.length >= limit) return out;
      continueAfter(request, last, limit - out.length);
    }
  }

  async databases(options: NamesOptions = {}): Promise<string[]> {
    return (await this.api.Databases({ namespace: options.namespace ?? this.defaults.namespace, limit: options.limit, offset: options.offset })).databases;
  }

  async tables(options: TablesOptions = {}): Promise<string[]> {
    const database = options.database ?? this.defaults.database;
    return (await this.api.Tables({ namespace: options.namespace ?? this.defaults.namespace, database, limit: options.limit, offset: options.offset })).tables;
  }

  async query(options: QueryOptions = {}): Promise<StoreRecord[]> {
    // checked here too: the page continuation below relies on a valid limit and offset
    checkQuery(options);
    const request = { ...this.scope(options), where: options.where, orderBy: options.orderBy, order: options.order, limit: options.limit, offset: options.offset };
    const limit = options.limit ?? STORE_LIMITS.defaultLimit;
    const out: StoreRecord[] = [];
    for (;;) {
      const { records, more } = await this.api.Query(request);
      out.push(...records);
      if (!more || records.length === 0 || out.length >= limit) return out;
      // no key cursor here (the order is by a field): the next page by offset
      request.offset = (options.offset ?? 0) + out.length;
      request.limit = limit - out.length;
    }
  }

  async count(options: CountOptions = {}): Promise<number> {
    return (await this.api.Count({ ...this.scope(options), where: options.where })).count;
  }

  private scope(options: { namespace?: string; database?: string; table?: string }) {
    return {
      namespace: options.namespace ?? this.defaults.namespace,
      database: options.database ?? this.defaults.database,
      table: options.table ?? this.defaults.table,
    };
  }
}

/** The next page of a cut answer: after the last key (before it, going down), no offset. */
function continueAfter(request: { after?: string; before?: string; order?: 'asc' | 'desc'; offset?: number; limit?: number }, last: string, remaining: number): void {
  if (request.order === 'desc') request.before = last;
  else request.after = last;
  request.offset = undefined;
  request.limit = remaining;
}

/** The blob store of a `micro server`: blobs travel as streams of 64 KiB base64 chunks. */
export class RemoteBlobStore implements BlobStore {
  readonly name = 'remote';
  private readonly api: TypedClient<typeof storeService>;

  constructor(
    client: Client,
    private readonly defaults: { namespace?: string } = {},
  ) {
    this.api = createClient(storeService, client);
  }

  async put(key: string, data: BlobData, options: BlobOptions = {}): Promise<BlobInfo> {
    checkKey(key);
    const namespace = options.namespace ?? this.defaults.namespace;
    // a failure of the caller's data source is the caller's error, not the transport's
    let sourceFailure: { err: unknown } | undefined;
    async function* messages() {
      yield { key, namespace };
      try {
        for await (const chunk of blobChunks(data, BLOB_CHUNK_SIZE)) {
          yield { data: Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length).toString('base64') };
        }
      } catch (err) {
        sourceFailure = { err };
        throw err;
      }
    }
    try {
      return await this.api['Blob.Put'](messages());
    } catch (err) {
      if (sourceFailure) throw sourceFailure.err;
      throw err;
    }
  }

  get(key: string, options: BlobOptions = {}): AsyncIterable<Uint8Array> {
    checkKey(key);
    const request = { key, namespace: options.namespace ?? this.defaults.namespace };
    const api = this.api;
    return (async function* () {
      const stream = api['Blob.Get'](request);
      try {
        for await (const { data } of stream) yield Buffer.from(data, 'base64');
      } finally {
        // a reader that stops early stops the server too
        stream.cancel('blob read stopped');
      }
    })();
  }

  async delete(key: string, options: BlobOptions = {}): Promise<void> {
    await this.api['Blob.Delete']({ key, namespace: options.namespace ?? this.defaults.namespace });
  }

  async list(options: BlobListOptions = {}): Promise<BlobInfo[]> {
    const request = { namespace: options.namespace ?? this.defaults.namespace, prefix: options.prefix, after: options.after, limit: options.limit, offset: options.offset };
    const limit = options.limit ?? STORE_LIMITS.defaultLimit;
    const out: BlobInfo[] = [];
    for (;;) {
      const { blobs, more } = await this.api['Blob.List'](request);
      out.push(...blobs);
      const last = blobs.at(-1);
      if (!more || !last || out.length >= limit) return out;
      continueAfter(request, last.key, limit - out.length);
    }
  }
}
