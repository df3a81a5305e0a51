/**
 * Sync: distributed locks with a lease and a fencing token, and leader election.
 *
 * - `lock(name, {ttl, wait})` takes the lock for `ttl` ms (the lease; default 30 s,
 *   at most 1 h), waiting up to `wait` ms (at most 60 s) while someone else holds it;
 *   a 409 when it is still held after that. A lock whose lease passed is free again.
 * - Each acquisition gets a fencing `token`: a number larger than every token handed
 *   out before for that lock (it survives restarts), so a resource that remembers the
 *   largest token it saw can refuse a late write of a holder whose lease had passed.
 * - `renew` extends the lease and `release` frees the lock; a caller that is not the
 *   holder any more (another took the lock) gets a 409. A holder whose lease passed may
 *   still renew it while nobody else took the lock (within a minute): no other holder
 *   existed in between, so the token stays valid.
 * - `elect(name, {id, ttl})` campaigns for leadership: the leader is the holder of the
 *   lock `name`, renewing its lease every ttl/3; it steps down when a renewal fails or
 *   its lease would pass without one, and another candidate takes over.
 */

export interface NamespaceOption {
  /** the namespace of the lock (default `micro`; a remote sync uses the caller's) */
  namespace?: string;
}

export interface LockInfo {
  namespace: string;
  name: string;
  /** the fencing token of this acquisition */
  token: number;
  /** who holds it, as told by the holder (an election's candidate id) */
  owner?: string;
  /** when the lease passes unless renewed, epoch ms (the server's clock) */
  expiresAt: number;
}

export interface LockOptions extends NamespaceOption {
  /** the lease, ms (default 30,000; 10 … 3,600,000) */
  ttl?: number;
  /** how long to wait for a lock someone else holds, ms (default 0: fail at once; at most 60,000) */
  wait?: number;
  /** who is taking it, shown to others (at most 255 characters) */
  owner?: string;
  /** gives up waiting */
  signal?: AbortSignal;
}

/** A lock held. */
export interface Lock {
  readonly namespace: string;
  readonly name: string;
  readonly token: number;
  readonly owner?: string;
  /** when the lease passes unless renewed (epoch ms); updated by renew */
  readonly expiresAt: number;
  /** Extends the lease by `ttl` ms from now (default: the lock's ttl); a 409 when another holds the lock now. */
  renew(ttl?: number): Promise<void>;
  /** Frees the lock; a 409 when another holds it now (this lease had passed and was taken). */
  release(): Promise<void>;
}

export interface ElectOptions extends NamespaceOption {
  /** this candidate's id, shown as the lock's owner (default: a random id) */
  id?: string;
  /** the leader's lease, ms: how long a leader that stops renewing stays leader (default 30,000) */
  ttl?: number;
}

export interface LeadershipChange {
  leader: boolean;
  /** the fencing token of this leadership */
  token?: number;
}

/**
 * A candidate in an election. Iterate it (for-await) or use `onChange` to follow its
 * leadership: the iterator yields the current state first, then each change.
 */
export interface Leader extends AsyncIterable<LeadershipChange> {
  readonly name: string;
  readonly id: string;
  readonly isLeader: boolean;
  /** the fencing token while leader */
  readonly token: number | undefined;
  /** set when the election stopped on an error it cannot get past (e.g. a 403) */
  readonly error: unknown;
  /** Calls `listener` on each change; returns the function that stops it. */
  onChange(listener: (change: LeadershipChange) => void): () => void;
  /** Leaves the election: stops campaigning and releases the leadership if held. */
  resign(): Promise<void>;
}

export interface ListLocksOptions extends NamespaceOption {
  /** only locks whose name starts with this */
  prefix?: string;
  /** at most this many (default 100, at most 1000) */
  limit?: number;
}

export interface Sync {
  readonly name: string;
  lock(name: string, options?: LockOptions): Promise<Lock>;
  /** Joins the election `name`; resolves once the first attempt is made (isLeader tells its outcome). */
  elect(name: string, options?: ElectOptions): Promise<Leader>;
  /** The lock `name` while it is held; undefined when it is free. */
  inspect(name: string, options?: NamespaceOption): Promise<LockInfo | undefined>;
  /** The locks held now, by name. */
  locks(options?: ListLocksOptions): Promise<LockInfo[]>;
  /** Resigns the elections joined through this sync and frees what the engine holds. */
  close?(): Promise<void>;
}

/** The id sync errors carry. */
export const SYNC_ERROR_ID = 'micro.sync';

export const SYNC_LIMITS = Object.freeze({
  /** lock name, owner, namespace, prefix: characters */
  nameChars: 255,
  ttlMin: 10,
  ttlMax: 3_600_000,
  ttlDefault: 30_000,
  waitMax: 60_000,
  listDefault: 100,
  listMax: 1000,
  /** locks held at once in one namespace */
  locksPerNamespace: 10_000,
  /** callers waiting for locks at once, in one engine */
  waiters: 10_000,
  /** callers waiting for locks at once, in one namespace */
  waitersPerNamespace: 1000,
  /** how long after its lease passed a holder may still renew it (if nobody took the lock) */
  renewGrace: 60_000,
});
