import { join } from 'node:path';
import { microHome } from '../config/env.js';
import { MemoryRegistry } from '../registry/memory.js';
import { FileRegistry } from '../registry/file.js';
import type { Registry } from '../registry/registry.js';
import { Selector } from '../selector/selector.js';
import { ConnectionPool } from '../transport/client.js';
// NATS transport (issue 6): registers the `nats:` addresses with every ConnectionPool
import '../transport/nats/client.js';
import { RemoteRegistry } from '../registry/service.js';
import { LazyRegistry } from '../registry/lazy.js';
import { profileFromEnv } from '../engines/profile.js';
import { platformClient, serverAddress } from './platform.js';

/**
 * Process-wide defaults, made on first use: one registry, one selector per registry and
 * one connection pool, shared by every client and service of the process so that they
 * share connections and registry caches.
 */
let registry: Registry | undefined;
let pool: ConnectionPool | undefined;
const selectors = new WeakMap<Registry, Selector>();

/**
 * The registry named by MICRO_REGISTRY: `nats` (the default with MICRO_PROFILE=nats) is
 * the JetStream KV bucket every server node shares, so a service stays registered and
 * findable when the node that started it dies; `server` (the default when MICRO_SERVER
 * is set) is the registry service of that micro server; `file` (the default otherwise)
 * is shared by every process of this machine through MICRO_HOME/registry, so services
 * find each other with no server; `memory` is this process only (unit tests).
 */
export function defaultRegistry(): Registry {
  if (!registry) {
    const server = serverAddress();
    const profile = profileFromEnv();
    const kind = process.env.MICRO_REGISTRY || (profile.name === 'nats' ? 'nats' : server ? 'server' : 'file');
    if (kind === 'nats') {
      if (profile.name !== 'nats') throw new Error('MICRO_REGISTRY=nats needs MICRO_PROFILE=nats (and MICRO_NATS_URL, MICRO_PREFIX)');
      // loaded on first use: nats.js is not loaded by services that never need it
      registry = new LazyRegistry('nats', async () => (await import('../registry/nats-kv.js')).KvRegistry.connect(profile.natsUrl, { prefix: profile.prefix }));
      return registry;
    }
    if (kind === 'server') {
      if (!server) throw new Error('MICRO_REGISTRY=server needs MICRO_SERVER, the address of micro server');
      registry = new RemoteRegistry(platformClient(server));
      return registry;
    }
    if (kind === 'memory') registry = new MemoryRegistry();
    else if (kind === 'file') registry = new FileRegistry({ dir: join(microHome(), 'registry') });
    else throw new Error(`unknown MICRO_REGISTRY "${kind}": use nats, server, file or memory`);
  }
  return registry;
}

/** Replaces the process-wide registry (tests, or a registry of your own). */
export function setDefaultRegistry(r: Registry): void {
  registry = r;
}

export function sharedSelector(r: Registry): Selector {
  let s = selectors.get(r);
  if (!s) {
    s = new Selector({ registry: r });
    selectors.set(r, s);
  }
  return s;
}

export function sharedPool(): ConnectionPool {
  pool ??= new ConnectionPool();
  return pool;
}
