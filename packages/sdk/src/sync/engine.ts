/*
 * The engine under every Sync: five operations on leases, which the sync service
 * serves as they are. A lease is a LockInfo plus `holder`, a random id only its
 * acquirer knows, which renew and release must show (the fencing token is public, so it
 * cannot be the proof of holding).
 *
 * LocalLockEngine implements the waiting, the checks and the errors once for the engines
 * that keep their locks in this process's reach (memory, SQLite): they only implement
 * the primitive operations, each atomic. An engine shared by several processes
 * (Postgres) implements them too, asynchronously, and wakes the waiters of this process
 * (`wakeWaiters`) when it hears of a release elsewhere.
 */

import { randomBytes } from 'node:crypto';
import { BadRequest, Cancelled, Conflict, ServiceUnavailable, TooManyRequests } from '../errors/errors.js';
import { DEFAULT_NAMESPACE } from '../registry/registry.js';
import { SYNC_ERROR_ID, SYNC_LIMITS, type ListLocksOptions, type LockInfo, type NamespaceOption } from './sync.js';

export interface Lease extends LockInfo {
  /** the proof of holding: random, known only to the acquirer */
  holder: string;
}

export interface AcquireOptions extends NamespaceOption {
  ttl?: number;
  wait?: number;
  owner?: string;
  signal?: AbortSignal;
}

export interface RenewOptions extends NamespaceOption {
  ttl?: number;
  signal?: AbortSignal;
}

export interface LockEngine {
  readonly name: string;
  /** Takes the lock, waiting up to `wait` ms; a 409 when it is still held then. */
  acquire(name: string, options?: AcquireOptions): Promise<Lease>;
  /** Extends the lease to now + ttl; a 409 when `holder` does not hold it (any more). */
  renew(name: string, holder: string, options?: RenewOptions): Promise<Lease>;
  /** Frees the lock; a 409 when another holds it; nothing when nobody does. */
  release(name: string, holder: string, options?: NamespaceOption): Promise<void>;
  inspect(name: string, options?: NamespaceOption): Promise<LockInfo | undefined>;
  list(options?: ListLocksOptions): Promise<LockInfo[]>;
  close?(): Promise<void>;
}

// ---- input checks, the same for every engine ---------------------------------------------

// Control characters (NUL included) would corrupt logs, terminals and keys.
const CONTROL = /\p{Cc}/u;

function bad(detail: string): Error {
  return BadRequest(SYNC_ERROR_ID, detail);
}

export function checkText(value: unknown, field: string, max: number = SYNC_LIMITS.nameChars): string {
  if (typeof value !== 'string' || value.length === 0) throw bad(`${field} must be a non-empty string`);
  if (value.length > max) throw bad(`${field} must be at most ${max} characters (got ${value.length})`);
  if (CONTROL.test(value)) throw bad(`${field} must not contain control characters`);
  return value;
}

export function checkNamespace(value: unknown, fallback: string = DEFAULT_NAMESPACE): string {
  return value === undefined ? fallback : checkText(value, 'namespace');
}

function checkInteger(value: unknown, field: string, min: number, max: number, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw bad(`${field} must be a whole number of milliseconds from ${min} to ${max}`);
  }
  return value;
}

export function checkTtl(value: unknown): number {
  return checkInteger(value, 'ttl', SYNC_LIMITS.ttlMin, SYNC_LIMITS.ttlMax, SYNC_LIMITS.ttlDefault);
}

export function checkWait(value: unknown): number {
  return checkInteger(value, 'wait', 0, SYNC_LIMITS.waitMax, 0);
}

export function checkLimit(value: unknown): number {
  if (value === undefined) return SYNC_LIMITS.listDefault;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > SYNC_LIMITS.listMax) {
    throw bad(`limit must be a whole number from 1 to ${SYNC_LIMITS.listMax}`);
  }
  return value;
}

export function checkHolder(value: unknown): string {
  return checkText(value, 'holder', 64);
}

export function newHolder(): string {
  return randomBytes(18).toString('base64url');
}

/** `held by worker-1 (token 7) until …`, or `held (token 7) until …` when the holder gave no owner. */
function describe(lock: LockInfo): string {
  return `held${lock.owner ? ` by ${lock.owner}` : ''} (token ${lock.token}) until ${new Date(lock.expiresAt).toISOString()}`;
}

export function tooManyLocks(namespace: string): Error {
  return TooManyRequests(SYNC_ERROR_ID, `namespace ${namespace} holds ${SYNC_LIMITS.locksPerNamespace} locks already: release some first`);
}

export function heldError(name: string, lock: LockInfo, waited: number): Error {
  return Conflict(SYNC_ERROR_ID, `lock ${name} is ${describe(lock)}${waited > 0 ? ` (waited ${waited} ms)` : ''}`);
}

// ---- the engines in this process's reach ------------------------------------------------------

/** A lock as an engine keeps it: held while `expiresAt` is ahead. */
export interface LockRow {
  holder: string;
  owner?: string;
  token: number;
  expiresAt: number;
}

export type AcquireResult = { lease: Lease } | { held: LockInfo };

/** Who waits for which lock: woken when it is released, or when its lease passes. */
class Waiters {
  private readonly byKey = new Map<string, Set<() => void>>();
  private readonly byNamespace = new Map<string, number>();
  private count = 0;
  /** bumped by every wake: a caller that saw a lock held, then this change, looks again at once */
  wakes = 0;

  wait(namespace: string, name: string, ms: number, signal: AbortSignal | undefined): Promise<void> {
    if (this.count >= SYNC_LIMITS.waiters) {
      return Promise.reject(TooManyRequests(SYNC_ERROR_ID, `too many callers wait for locks (${SYNC_LIMITS.waiters}): try again later`));
    }
    const inNamespace = this.byNamespace.get(namespace) ?? 0;
    if (inNamespace >= SYNC_LIMITS.waitersPerNamespace) {
      return Promise.reject(TooManyRequests(SYNC_ERROR_ID, `${SYNC_LIMITS.waitersPerNamespace} callers of namespace ${namespace} wait for locks already: try again later`));
    }
    const k = key(namespace, name);
    return new Promise<void>((resolve, reject) => {
      let set = this.byKey.get(k);
      if (!set) this.byKey.set(k, (set = new Set()));
      const done = (err?: unknown) => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        if (set.delete(wake)) {
          this.count--;
          const left = (this.byNamespace.get(namespace) ?? 1) - 1;
          if (left === 0) this.byNamespace.delete(namespace);
          else this.byNamespace.set(namespace, left);
        }
        if (set.size === 0 && this.byKey.get(k) === set) this.byKey.delete(k);
        if (err) reject(err);
        else resolve();
      };
      const wake = () => done();
      const onAbort = () => done(Cancelled(SYNC_ERROR_ID, 'stopped waiting for the lock'));
      const timer = setTimeout(wake, Math.max(1, ms));
      set.add(wake);
      this.count++;
      this.byNamespace.set(namespace, inNamespace + 1);
      if (signal?.aborted) onAbort();
      else signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  wake(namespace: string, name: string): void {
    this.wakes++;
    for (const w of [...(this.byKey.get(key(namespace, name)) ?? [])]) w();
  }

  wakeAll(): void {
    this.wakes++;
    for (const set of [...this.byKey.values()]) for (const w of [...set]) w();
  }
}

export abstract class LocalLockEngine implements LockEngine {
  abstract readonly name: string;
  private readonly waiters = new Waiters();
  private closed = false;

  /** Atomically: takes the lock (a new row with the next fencing token) unless a live lease holds it. */
  protected abstract tryAcquire(namespace: string, name: string, ttl: number, owner: string | undefined, holder: string, now: number): AcquireResult | Promise<AcquireResult>;
  /** The row of the lock, live or not, if any. */
  protected abstract row(namespace: string, name: string): LockRow | undefined | Promise<LockRow | undefined>;
  /** Atomically sets the lease's expiry when `holder` still holds the row; false when it does not. */
  protected abstract extend(namespace: string, name: string, holder: string, expiresAt: number): boolean | Promise<boolean>;
  /** Atomically removes the row when `holder` holds it; false when it does not. */
  protected abstract remove(namespace: string, name: string, holder: string): boolean | Promise<boolean>;
  /** The live locks of a namespace by name, from `prefix`, at most `limit`. */
  protected abstract live(namespace: string, prefix: string, limit: number, now: number): LockInfo[] | Promise<LockInfo[]>;
  protected abstract release_(): Promise<void>;

  async acquire(name: string, options: AcquireOptions = {}): Promise<Lease> {
    this.checkOpen();
    checkText(name, 'name');
    const namespace = checkNamespace(options.namespace);
    const ttl = checkTtl(options.ttl);
    const wait = checkWait(options.wait);
    const owner = options.owner === undefined ? undefined : checkText(options.owner, 'owner');
    const started = Date.now();
    const deadline = started + wait;
    for (;;) {
      const wakes = this.waiters.wakes;
      const result = await this.tryAcquire(namespace, name, ttl, owner, newHolder(), Date.now());
      if ('lease' in result) return result.lease;
      // closed while an asynchronous engine looked: a 503, as for the callers it woke
      this.checkOpen();
      const now = Date.now();
      if (now >= deadline) throw heldError(name, result.held, wait > 0 ? now - started : 0);
      // a release heard while an asynchronous engine looked: it may have been this lock's
      if (this.waiters.wakes !== wakes) continue;
      // woken by a release, or when the holder's lease passes (it may have been renewed: then wait again)
      await this.waiters.wait(namespace, name, Math.min(deadline, result.held.expiresAt + 1) - now, options.signal);
      this.checkOpen();
    }
  }

  async renew(name: string, holder: string, options: RenewOptions = {}): Promise<Lease> {
    this.checkOpen();
    checkText(name, 'name');
    checkHolder(holder);
    const namespace = checkNamespace(options.namespace);
    const ttl = checkTtl(options.ttl);
    const now = Date.now();
    const row = await this.row(namespace, name);
    if (!row || row.holder !== holder) throw this.notHolder(namespace, name, row, now);
    // a lease that passed is renewed only while nobody took the lock, and not for ever
    if (row.expiresAt + SYNC_LIMITS.renewGrace < now) {
      throw Conflict(SYNC_ERROR_ID, `the lease of lock ${name} passed at ${new Date(row.expiresAt).toISOString()}: take the lock again`);
    }
    const expiresAt = now + ttl;
    if (!(await this.extend(namespace, name, holder, expiresAt))) throw this.notHolder(namespace, name, await this.row(namespace, name), now);
    return { namespace, name, token: row.token, ...(row.owner !== undefined ? { owner: row.owner } : {}), expiresAt, holder };
  }

  async release(name: string, holder: string, options: NamespaceOption = {}): Promise<void> {
    this.checkOpen();
    checkText(name, 'name');
    checkHolder(holder);
    const namespace = checkNamespace(options.namespace);
    const row = await this.row(namespace, name);
    if (!row) return;
    if (!(await this.remove(namespace, name, holder))) throw this.notHolder(namespace, name, await this.row(namespace, name), Date.now());
    this.waiters.wake(namespace, name);
  }

  async inspect(name: string, options: NamespaceOption = {}): Promise<LockInfo | undefined> {
    this.checkOpen();
    checkText(name, 'name');
    const namespace = checkNamespace(options.namespace);
    const row = await this.row(namespace, name);
    if (!row || row.expiresAt <= Date.now()) return undefined;
    return info(namespace, name, row);
  }

  async list(options: ListLocksOptions = {}): Promise<LockInfo[]> {
    this.checkOpen();
    const namespace = checkNamespace(options.namespace);
    const prefix = options.prefix === undefined || options.prefix === '' ? '' : checkText(options.prefix, 'prefix');
    return this.live(namespace, prefix, checkLimit(options.limit), Date.now());
  }

  /**
   * Wakes the callers of this process that wait for `name` (all of them without a name),
   * so that they look again: for engines that hear of releases made by other processes.
   */
  protected wakeWaiters(namespace?: string, name?: string): void {
    if (namespace === undefined || name === undefined) this.waiters.wakeAll();
    else this.waiters.wake(namespace, name);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.waiters.wakeAll();
    await this.release_();
  }

  private notHolder(namespace: string, name: string, row: LockRow | undefined, now: number): Error {
    if (row && row.expiresAt > now) return Conflict(SYNC_ERROR_ID, `lock ${name} is not yours: it is ${describe(info(namespace, name, row))}`);
    if (row) return Conflict(SYNC_ERROR_ID, `lock ${name} is not yours: its lease passed and another took the lock since; take it again`);
    return Conflict(SYNC_ERROR_ID, `lock ${name} is not held any more (it was released, or its lease passed long ago): take it again`);
  }

  protected checkOpen(): void {
    if (this.closed) throw ServiceUnavailable(SYNC_ERROR_ID, `sync (${this.name}) is closed`);
  }
}

export function info(namespace: string, name: string, row: LockRow): LockInfo {
  return { namespace, name, token: row.token, ...(row.owner !== undefined ? { owner: row.owner } : {}), expiresAt: row.expiresAt };
}

function key(namespace: string, name: string): string {
  return `${namespace}\0${name}`;
}
