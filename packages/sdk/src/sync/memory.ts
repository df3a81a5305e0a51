import { LocalLockEngine, info, tooManyLocks, type AcquireResult, type LockRow } from './engine.js';
import { LockSync } from './lock.js';
import { SYNC_LIMITS, type LockInfo } from './sync.js';

/**
 * Locks in this process's memory: the same rules, bounds, tokens and errors as the
 * server's (the waiting and the checks are shared, see LocalLockEngine).
 */
export class MemoryLocks extends LocalLockEngine {
  readonly name = 'memory';
  private readonly namespaces = new Map<string, Map<string, LockRow>>();
  /** the last fencing token of each namespace: tokens never go back, even when a lock's row goes */
  private readonly fences = new Map<string, number>();

  protected tryAcquire(namespace: string, name: string, ttl: number, owner: string | undefined, holder: string, now: number): AcquireResult {
    let locks = this.namespaces.get(namespace);
    const current = locks?.get(name);
    if (current && current.expiresAt > now) return { held: info(namespace, name, current) };
    if (!current && locks && locks.size >= SYNC_LIMITS.locksPerNamespace) {
      // expired leases still count until they are swept: sweep before refusing
      for (const [n, row] of locks) if (row.expiresAt <= now) locks.delete(n);
      if (locks.size >= SYNC_LIMITS.locksPerNamespace) throw tooManyLocks(namespace);
    }
    const token = (this.fences.get(namespace) ?? 0) + 1;
    this.fences.set(namespace, token);
    const row: LockRow = { holder, token, expiresAt: now + ttl, ...(owner !== undefined ? { owner } : {}) };
    if (!locks) this.namespaces.set(namespace, (locks = new Map()));
    locks.set(name, row);
    return { lease: { ...info(namespace, name, row), holder } };
  }

  protected row(namespace: string, name: string): LockRow | undefined {
    return this.namespaces.get(namespace)?.get(name);
  }

  protected extend(namespace: string, name: string, holder: string, expiresAt: number): boolean {
    const row = this.row(namespace, name);
    if (!row || row.holder !== holder) return false;
    row.expiresAt = expiresAt;
    return true;
  }

  protected remove(namespace: string, name: string, holder: string): boolean {
    const locks = this.namespaces.get(namespace);
    if (locks?.get(name)?.holder !== holder) return false;
    locks.delete(name);
    if (locks.size === 0) this.namespaces.delete(namespace);
    return true;
  }

  protected live(namespace: string, prefix: string, limit: number, now: number): LockInfo[] {
    const out: LockInfo[] = [];
    for (const [name, row] of this.namespaces.get(namespace) ?? []) {
      if (row.expiresAt > now && name.startsWith(prefix)) out.push(info(namespace, name, row));
    }
    // by the bytes of the names in UTF-8, as SQLite orders them
    return out.sort((a, b) => Buffer.compare(Buffer.from(a.name), Buffer.from(b.name))).slice(0, limit);
  }

  protected async release_(): Promise<void> {
    this.namespaces.clear();
  }
}

/** Sync in this process only, for tests: `new MemorySync()`. */
export class MemorySync extends LockSync {
  constructor() {
    super(new MemoryLocks());
  }
}
