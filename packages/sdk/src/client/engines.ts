import { rootLogger } from '../logger/logger.js';
import type { Broker } from '../broker/broker.js';
import { MemoryBroker } from '../broker/memory.js';
import { RemoteBroker } from '../broker/service.js';
import type { Cache } from '../cache/cache.js';
import { MemoryCache } from '../cache/memory.js';
import { RemoteCache } from '../cache/remote.js';
import type { Config } from '../config/config.js';
import { MemoryConfig } from '../config/memory.js';
import { RemoteConfig } from '../config/remote.js';
import type { Events } from '../events/events.js';
import type { Fulltext } from '../fulltext/fulltext.js';
import { MemoryFulltext } from '../fulltext/memory.js';
import { RemoteFulltext } from '../fulltext/remote.js';
import { MemoryEvents } from '../events/memory.js';
import { RemoteEvents } from '../events/remote.js';
import type { BlobStore } from '../store/blob.js';
import { MemoryBlobStore } from '../store/memory-blob.js';
import { MemoryStore } from '../store/memory.js';
import { RemoteBlobStore, RemoteStore } from '../store/remote.js';
import type { Store } from '../store/store.js';
import type { Sync } from '../sync/sync.js';
import { MemorySync } from '../sync/memory.js';
import { RemoteSync } from '../sync/remote.js';
import { Client } from './client.js';
import { tracedBroker, tracedEvents } from '../tracing/messages.js';
import { platformClient, serverAddress } from './platform.js';

/**
 * The engines a service uses by default, made on first use and shared by the process:
 * with MICRO_SERVER set (as under `micro run`), the core services of that server, acting
 * as the process's account in its namespace; without it, in-memory engines that live as
 * long as the process (said once in the log, since their data is lost on exit).
 *
 * ```ts
 * import { store, config, events } from '@micro/sdk';
 * await store().write({ key: 'user:1', value: { name: 'Ada' } });
 * ```
 */
let platform: Client | undefined;
const made = new Map<string, unknown>();

function engine<T>(name: string, remote: (client: Client) => T, memory: () => T): T {
  let e = made.get(name) as T | undefined;
  if (e) return e;
  const address = serverAddress();
  if (address) {
    platform ??= platformClient(address);
    e = remote(platform);
  } else {
    rootLogger().warn(`no MICRO_SERVER: using an in-memory ${name} engine; its data is lost when this process exits`);
    e = memory();
  }
  made.set(name, e);
  return e;
}

export const store = (): Store => engine<Store>('store', (c) => new RemoteStore(c), () => new MemoryStore());
export const blobs = (): BlobStore => engine<BlobStore>('blob store', (c) => new RemoteBlobStore(c), () => new MemoryBlobStore());
export const config = (): Config => engine<Config>('config', (c) => new RemoteConfig(c), () => new MemoryConfig());
// traced (issue 7): publishes carry the trace, deliveries continue it, when the process traces
export const events = (): Events => engine<Events>('events', (c) => tracedEvents(new RemoteEvents(c)), () => tracedEvents(new MemoryEvents()));
export const sync = (): Sync => engine<Sync>('sync', (c) => new RemoteSync(c), () => new MemorySync());
export const cache = (): Cache => engine<Cache>('cache', (c) => new RemoteCache(c), () => new MemoryCache());
export const fulltext = (): Fulltext => engine<Fulltext>('fulltext', (c) => new RemoteFulltext(c), () => new MemoryFulltext());
export const broker = (): Broker => engine<Broker>('broker', (c) => tracedBroker(new RemoteBroker(c)), () => tracedBroker(new MemoryBroker()));

/**
 * The engines a service keeps its data in, as one value: what a service that can be
 * hosted elsewhere takes instead of calling the defaults above (micro server hosts the
 * platform's public services in process and gives them its own; see
 * `MicroServerOptions.services`).
 */
export interface Engines {
  store: Store;
  blobs: BlobStore;
  config: Config;
  events: Events;
  sync: Sync;
  cache: Cache;
  broker: Broker;
  /**
   * The client the engines call the server with, as the same identity: how a service
   * hosted by the platform reaches the platform's other core services (e.g. `mail`).
   * Undefined for in-memory engines (no server).
   */
  client?: Client;
  /**
   * A client of the services of `namespace`, found through the registry, calling as the
   * same identity (a token scoped to each callee): how a service hosted by the platform
   * reaches a tenant's own services (e.g. `function` calls a tenant's deployed function).
   * Undefined where there is no server; a service run by a tenant reaches only its own
   * namespace with it (the callee's auth refuses other namespaces).
   */
  clientIn?(namespace: string): Client;
  /** full-text search indexes */
  fulltext: Fulltext;
}

/** The process's default engines (above), made on first use of each. */
export function defaultEngines(): Engines {
  return {
    get store() { return store(); },
    get blobs() { return blobs(); },
    get config() { return config(); },
    get events() { return events(); },
    get sync() { return sync(); },
    get cache() { return cache(); },
    get broker() { return broker(); },
    get client() {
      const address = serverAddress();
      return address ? (platform ??= platformClient(address)) : undefined;
    },
    get fulltext() { return fulltext(); },
    clientIn: (namespace) => namespacedClient(namespace, () => new Client({ namespace })),
  };
}

const namespaced = new Map<string, Client>();
/** At most this many namespaces' clients are kept (each holds a compiled call per endpoint). */
const NAMESPACED_LIMIT = 1_000;

/** One client per namespace, made by `make` on first use (oldest dropped past the limit). */
export function namespacedClient(namespace: string, make: () => Client, cache: Map<string, Client> = namespaced): Client {
  let c = cache.get(namespace);
  if (!c) {
    if (cache.size >= NAMESPACED_LIMIT) cache.delete(cache.keys().next().value as string);
    c = make();
    cache.set(namespace, c);
  }
  return c;
}

/** The engines of the server a client reaches, acting as the client's identity. */
export function remoteEngines(client: Client): Engines {
  return {
    store: new RemoteStore(client),
    blobs: new RemoteBlobStore(client),
    config: new RemoteConfig(client),
    events: tracedEvents(new RemoteEvents(client)),
    sync: new RemoteSync(client),
    cache: new RemoteCache(client),
    broker: tracedBroker(new RemoteBroker(client)),
    client,
    fulltext: new RemoteFulltext(client),
  };
}
