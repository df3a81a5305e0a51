import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { Lease, LockEngine } from './engine.js';
import { Election } from './leader.js';
import { SYNC_LIMITS, type ElectOptions, type Leader, type ListLocksOptions, type Lock, type LockInfo, type LockOptions, type NamespaceOption, type Sync } from './sync.js';

/** A lock held through an engine: it keeps the holder's proof to itself. */
class HeldLock implements Lock {
  readonly namespace: string;
  readonly name: string;
  readonly token: number;
  readonly owner?: string;
  expiresAt: number;
  private readonly holder: string;

  constructor(
    private readonly engine: LockEngine,
    lease: Lease,
    private ttl: number,
  ) {
    this.namespace = lease.namespace;
    this.name = lease.name;
    this.token = lease.token;
    if (lease.owner !== undefined) this.owner = lease.owner;
    this.expiresAt = lease.expiresAt;
    this.holder = lease.holder;
  }

  async renew(ttl: number = this.ttl): Promise<void> {
    const lease = await this.engine.renew(this.name, this.holder, { namespace: this.namespace, ttl });
    this.expiresAt = lease.expiresAt;
    this.ttl = ttl;
  }

  async release(): Promise<void> {
    await this.engine.release(this.name, this.holder, { namespace: this.namespace });
  }

  toJSON(): LockInfo {
    return { namespace: this.namespace, name: this.name, token: this.token, ...(this.owner !== undefined ? { owner: this.owner } : {}), expiresAt: this.expiresAt };
  }
}

/**
 * A Sync over a LockEngine: locks as objects that renew and release themselves, and
 * elections. MemorySync, the SQLite engine's sync and RemoteSync are this class over
 * their engines.
 */
export class LockSync implements Sync {
  readonly name: string;
  private readonly elections = new Set<Election>();

  constructor(readonly engine: LockEngine) {
    this.name = engine.name;
  }

  async lock(name: string, options: LockOptions = {}): Promise<Lock> {
    const lease = await this.engine.acquire(name, options);
    return new HeldLock(this.engine, lease, options.ttl ?? SYNC_LIMITS.ttlDefault);
  }

  async elect(name: string, options: ElectOptions = {}): Promise<Leader> {
    const id = options.id ?? `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
    const election = new Election(this.engine, name, { namespace: options.namespace, id, ttl: options.ttl ?? SYNC_LIMITS.ttlDefault }, (e) => this.elections.delete(e));
    this.elections.add(election);
    try {
      await election.start();
    } catch (err) {
      this.elections.delete(election);
      throw err;
    }
    return election;
  }

  inspect(name: string, options: NamespaceOption = {}): Promise<LockInfo | undefined> {
    return this.engine.inspect(name, options);
  }

  locks(options: ListLocksOptions = {}): Promise<LockInfo[]> {
    return this.engine.list(options);
  }

  async close(): Promise<void> {
    await Promise.all([...this.elections].map((e) => e.resign()));
    await this.engine.close?.();
  }
}
