/** Sync: distributed locks with leases and fencing tokens, and leader election. */
export type { Sync, Lock, LockInfo, LockOptions, Leader, LeadershipChange, ElectOptions, ListLocksOptions, NamespaceOption as SyncNamespaceOption } from './sync.js';
export { SYNC_ERROR_ID, SYNC_LIMITS } from './sync.js';
export type { LockEngine, Lease, AcquireOptions, RenewOptions, LockRow, AcquireResult } from './engine.js';
export { LocalLockEngine, tooManyLocks, info as lockInfo } from './engine.js';
export { LockSync } from './lock.js';
export { MemorySync, MemoryLocks } from './memory.js';
export { syncService } from './definition.js';
export { RemoteSync, RemoteLocks } from './remote.js';
