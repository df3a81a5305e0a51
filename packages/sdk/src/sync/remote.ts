import type { Client } from '../client/client.js';
import { createClient, type TypedClient } from '../client/typed.js';
import type { AcquireOptions, Lease, LockEngine, RenewOptions } from './engine.js';
import { LockSync } from './lock.js';
import { syncService } from './definition.js';
import type { ListLocksOptions, LockInfo, NamespaceOption } from './sync.js';

/** How much longer than its wait a Lock call may take before the client gives up. */
const CALL_MARGIN = 10_000;

/** The lock engine of a `micro server`, through its sync service. */
export class RemoteLocks implements LockEngine {
  readonly name = 'remote';
  private readonly api: TypedClient<typeof syncService>;

  constructor(client: Client) {
    this.api = createClient(syncService, client);
  }

  acquire(name: string, options: AcquireOptions = {}): Promise<Lease> {
    const { signal, ...request } = options;
    const wait = typeof request.wait === 'number' ? request.wait : 0;
    return this.api.Lock({ name, ...request }, { signal, timeout: wait + CALL_MARGIN });
  }

  renew(name: string, holder: string, options: RenewOptions = {}): Promise<Lease> {
    return this.api.Renew({ name, holder, namespace: options.namespace, ttl: options.ttl }, { signal: options.signal });
  }

  async release(name: string, holder: string, options: NamespaceOption = {}): Promise<void> {
    await this.api.Release({ name, holder, namespace: options.namespace });
  }

  async inspect(name: string, options: NamespaceOption = {}): Promise<LockInfo | undefined> {
    return (await this.api.Get({ name, namespace: options.namespace })).lock;
  }

  async list(options: ListLocksOptions = {}): Promise<LockInfo[]> {
    return (await this.api.List({ namespace: options.namespace, prefix: options.prefix, limit: options.limit })).locks;
  }
}

/**
 * Sync through the sync service of a `micro server`, reached with `client` (see
 * platformClient). Locks are the server's: they hold across processes and machines.
 * Waiting happens on the server (a Lock call returns when the lock is free, or with a
 * 409 after `wait`). Calls without a namespace act in the caller's own.
 */
export class RemoteSync extends LockSync {
  constructor(client: Client) {
    super(new RemoteLocks(client));
  }
}
