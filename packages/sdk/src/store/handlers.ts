import type { Context } from '../context/context.js';
import { MicroError } from '../errors/errors.js';
import type { Handlers } from '../service/handlers.js';
import { BLOB_CHUNK_SIZE, blobChunks, type BlobStore } from './blob.js';
import type { storeService } from './definition.js';
import type { Store, StoreWhere } from './store.js';
import { STORE_ERROR_ID, bad, checkKey, fitting } from './util.js';

/**
 * Serves a Store and a BlobStore as the store service. `micro server` passes its
 * namespace rule (an account acts in its own namespace unless it is an admin of micro);
 * without one, requests act in the namespace they name.
 */
export interface StoreHandlerOptions {
  /** the namespace a request acts in; throws (403) when the caller may not act there */
  namespace?: (ctx: Context, asked: string | undefined) => string | undefined;
  /** bytes of records, keys or blob infos per answer before it is cut (default 3 MiB, under the 4 MiB frame) */
  answerBudget?: number;
  /** ms a blob upload may wait for its next chunk before it is abandoned (default 60,000) */
  blobIdleTimeout?: number;
}

const DEFAULT_BUDGET = 3 * 1024 * 1024;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

export function storeHandlers(store: Store, blobs: BlobStore, options: StoreHandlerOptions = {}): Handlers<typeof storeService> {
  const ns = options.namespace ?? ((_ctx: Context, asked: string | undefined) => asked);
  const budget = options.answerBudget ?? DEFAULT_BUDGET;
  const idle = options.blobIdleTimeout ?? 60_000;
  return {
    Read: async (req, ctx) => {
      const { key, ...rest } = req;
      const records = await store.read(key, { ...rest, namespace: ns(ctx, req.namespace) });
      const n = fitting(records, budget);
      return n < records.length ? { records: records.slice(0, n), more: true } : { records };
    },
    Write: async (req, ctx) => {
      await store.write(req.record, { ttl: req.ttl, namespace: ns(ctx, req.namespace), database: req.database, table: req.table });
      return {};
    },
    Delete: async (req, ctx) => {
      await store.delete(req.key, { namespace: ns(ctx, req.namespace), database: req.database, table: req.table });
      return {};
    },
    List: async (req, ctx) => {
      const keys = await store.list({ ...req, namespace: ns(ctx, req.namespace) });
      const n = fitting(keys, budget);
      return n < keys.length ? { keys: keys.slice(0, n), more: true } : { keys };
    },
    Databases: async (req, ctx) => ({ databases: await store.databases({ ...req, namespace: ns(ctx, req.namespace) }) }),
    Tables: async (req, ctx) => ({ tables: await store.tables({ ...req, namespace: ns(ctx, req.namespace) }) }),
    Query: async (req, ctx) => {
      const records = await store.query({ ...req, where: req.where as StoreWhere | undefined, namespace: ns(ctx, req.namespace) });
      const n = fitting(records, budget);
      return n < records.length ? { records: records.slice(0, n), more: true } : { records };
    },
    Count: async (req, ctx) => ({ count: await store.count({ ...req, where: req.where as StoreWhere | undefined, namespace: ns(ctx, req.namespace) }) }),

    'Blob.Put': async (requests, ctx) => {
      const source = requests[Symbol.asyncIterator]();
      // an upload that stalls must not hold its file open for ever
      const it = { next: () => withTimeout(source.next(), idle) };
      const first = await it.next();
      if (first.done || first.value.key === undefined) throw bad('the first message of Blob.Put must name the key');
      const asked = first.value.namespace;
      const namespace = ns(ctx, asked);
      const key = checkKey(first.value.key);
      async function* data(): AsyncGenerator<Uint8Array> {
        let message = first.value;
        for (;;) {
          if (message.data) yield decodeChunk(message.data);
          const next = await it.next();
          if (next.done) return;
          message = next.value;
          // every message belongs to the same blob
          if (message.key !== undefined && message.key !== key) throw bad('every message of Blob.Put must name the same key (or none)');
          if (message.namespace !== undefined && message.namespace !== asked) throw bad('every message of Blob.Put must name the same namespace (or none)');
        }
      }
      return blobs.put(key, data(), { namespace });
    },
    'Blob.Get': async function* (req, ctx) {
      // a stream cut short (cancel, lost caller) ends this loop, which closes the engine's reader
      for await (const chunk of blobChunks(blobs.get(req.key, { namespace: ns(ctx, req.namespace) }), BLOB_CHUNK_SIZE)) {
        yield { data: Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length).toString('base64') };
      }
    },
    'Blob.Delete': async (req, ctx) => {
      await blobs.delete(req.key, { namespace: ns(ctx, req.namespace) });
      return {};
    },
    'Blob.List': async (req, ctx) => {
      const list = await blobs.list({ ...req, namespace: ns(ctx, req.namespace) });
      const n = fitting(list, budget);
      return n < list.length ? { blobs: list.slice(0, n), more: true } : { blobs: list };
    },
  };
}

/** Base64 of at most one chunk, strictly: a malformed chunk must not become other bytes. */
function decodeChunk(data: string): Buffer {
  if (data.length % 4 !== 0 || !BASE64.test(data)) throw bad('data must be base64 (RFC 4648, with padding)');
  const bytes = Buffer.from(data, 'base64');
  if (bytes.length > BLOB_CHUNK_SIZE) throw bad(`a chunk of data must be at most ${BLOB_CHUNK_SIZE} bytes`);
  return bytes;
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new MicroError(STORE_ERROR_ID, 408, `blob upload sent nothing for ${ms} ms; abandoned`)), ms);
  });
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}
