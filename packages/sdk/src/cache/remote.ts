import type { Client } from '../client/client.js';
import { createClient, type TypedClient } from '../client/typed.js';
import { MicroError } from '../errors/errors.js';
import { CACHE_ERROR_ID, type Cache, type CacheItem, type CacheListOptions, type CacheOptions, type CacheSetOptions } from './cache.js';
import { cacheService } from './definition.js';
import { checkDelta, checkKey, checkLimit, checkNamespace, checkTtl, checkValue } from './util.js';

/**
 * The cache service of a `micro server`, reached through `client` (whose address is the
 * server's). What services use when MICRO_SERVER is set. Calls without a namespace act
 * in the caller's own (or the one given here).
 *
 * Every input is checked here too, before it is sent: JSON on the wire would silently
 * turn NaN into null (the server could not tell), and a caller gets the same 400s as
 * from every other engine. The server checks everything again.
 */
export interface RemoteCacheOptions {
  /** the namespace of calls that name none (default: the caller's own) */
  namespace?: string;
}

export class RemoteCache implements Cache {
  readonly name = 'remote';
  private readonly api: TypedClient<typeof cacheService>;

  constructor(
    client: Client,
    private readonly defaults: RemoteCacheOptions = {},
  ) {
    this.api = createClient(cacheService, client);
  }

  async set(key: string, value: unknown, options: CacheSetOptions = {}): Promise<void> {
    checkKey(key);
    checkValue(value);
    const ttl = checkTtl(options.ttl);
    await this.api.Set({ key, value, ttl: ttl === 0 ? undefined : ttl, namespace: this.ns(options) });
  }

  async get(key: string, options: CacheOptions = {}): Promise<CacheItem | undefined> {
    try {
      return (await this.api.Get({ key: checkKey(key), namespace: this.ns(options) })) as CacheItem;
    } catch (err) {
      // the cache's own 404 (a missing key), not one of the path (no cache service)
      if (err instanceof MicroError && err.code === 404 && err.id === CACHE_ERROR_ID) return undefined;
      throw err;
    }
  }

  async delete(key: string, options: CacheOptions = {}): Promise<void> {
    await this.api.Delete({ key: checkKey(key), namespace: this.ns(options) });
  }

  async increment(key: string, delta?: number, options: CacheOptions = {}): Promise<number> {
    return (await this.api.Increment({ key: checkKey(key), value: checkDelta(delta), namespace: this.ns(options) })).value;
  }

  async decrement(key: string, delta?: number, options: CacheOptions = {}): Promise<number> {
    return (await this.api.Decrement({ key: checkKey(key), value: checkDelta(delta), namespace: this.ns(options) })).value;
  }

  async listKeys(options: CacheListOptions = {}): Promise<string[]> {
    const prefix = options.prefix === undefined ? undefined : checkKey(options.prefix, 'prefix', true);
    return (await this.api.ListKeys({ prefix, limit: checkLimit(options.limit), namespace: this.ns(options) })).keys;
  }

  private ns(options: CacheOptions): string | undefined {
    const namespace = options.namespace ?? this.defaults.namespace;
    return namespace === undefined ? undefined : checkNamespace(namespace);
  }
}
