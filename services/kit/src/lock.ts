import { createHash } from 'node:crypto';
import type { Context, Engines } from '@micro/sdk';

export interface TenantLockOptions {
  /** ms the lock is held at most if its holder dies (default 10,000) */
  ttl?: number;
  /** ms to wait for it (default 10,000; then the call fails with the sync engine's 409) */
  wait?: number;
}

/**
 * Runs `fn` holding the calling tenant's lock `name` of service `service` (the sync engine,
 * in the tenant's own namespace, so no tenant can hold or wait on another's): what a
 * read-then-write of one record needs to stay right under concurrent calls. The name is
 * hashed, so any id (long, with any characters) makes a valid lock name.
 */
export async function withTenantLock<T>(engines: Pick<Engines, 'sync'>, ctx: Pick<Context, 'tenant' | 'signal'>, service: string, name: string, fn: () => Promise<T>, options: TenantLockOptions = {}): Promise<T> {
  const lock = await engines.sync.lock(`${service}/${createHash('sha256').update(name).digest('hex')}`, {
    namespace: ctx.tenant,
    ttl: options.ttl ?? 10_000,
    wait: options.wait ?? 10_000,
    owner: `${service} service`,
    signal: ctx.signal,
  });
  try {
    return await fn();
  } finally {
    await lock.release().catch(() => undefined);
  }
}
