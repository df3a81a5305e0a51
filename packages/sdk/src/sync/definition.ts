import { z } from 'zod';
import { defineService, endpoint } from '../service/definition.js';
import { SYNC_LIMITS } from './sync.js';

/**
 * The sync service as `micro server` serves it (RemoteSync is its client): the
 * operations of a LockEngine. The schemas give the bounds; the engine behind checks them
 * again, the same way for every engine.
 */

const Name = z.string().min(1).max(SYNC_LIMITS.nameChars).describe('the lock name');
const Namespace = z.string().min(1).max(SYNC_LIMITS.nameChars).optional().describe("the namespace (default: the caller's; others need an admin of micro)");
const Ttl = z.number().int().min(SYNC_LIMITS.ttlMin).max(SYNC_LIMITS.ttlMax).optional().describe('the lease in ms (default 30,000)');
const Holder = z.string().min(1).max(64).describe('the proof of holding that Lock returned');
const LockInfo = z.object({
  namespace: z.string(),
  name: z.string(),
  token: z.number().int().describe('the fencing token: larger than every token handed out before for this lock'),
  owner: z.string().optional(),
  expiresAt: z.number().describe('epoch ms'),
});
const Lease = LockInfo.extend({ holder: Holder });

export const syncService = defineService({
  name: 'sync',
  version: '1.0.0',
  description: 'Distributed locks with leases and fencing tokens, for mutual exclusion and leader election',
  endpoints: {
    Lock: endpoint({
      description: 'Takes a lock, waiting up to `wait` ms while another holds it (409 when it is still held then)',
      request: z.object({
        name: Name,
        namespace: Namespace,
        ttl: Ttl,
        wait: z.number().int().min(0).max(SYNC_LIMITS.waitMax).optional().describe('ms to wait for the lock (default 0, at most 60,000)'),
        owner: z.string().min(1).max(SYNC_LIMITS.nameChars).optional().describe('who takes it, shown to others'),
      }),
      response: Lease,
    }),
    Renew: endpoint({
      description: 'Extends the lease to now + ttl (409 when the holder does not hold the lock any more)',
      request: z.object({ name: Name, holder: Holder, namespace: Namespace, ttl: Ttl }),
      response: Lease,
      idempotent: true,
    }),
    Release: endpoint({
      description: 'Frees the lock (409 when another holds it)',
      request: z.object({ name: Name, holder: Holder, namespace: Namespace }),
      response: z.object({}),
      idempotent: true,
    }),
    Get: endpoint({
      description: 'The lock while it is held',
      request: z.object({ name: Name, namespace: Namespace }),
      response: z.object({ lock: LockInfo.optional().describe('absent when the lock is free') }),
      idempotent: true,
      readonly: true,
    }),
    List: endpoint({
      description: 'The locks held now, by name',
      request: z.object({
        namespace: Namespace,
        prefix: z.string().max(SYNC_LIMITS.nameChars).optional().describe('only names that start with this'),
        limit: z.number().int().min(1).max(SYNC_LIMITS.listMax).optional().describe('at most this many (default 100)'),
      }),
      response: z.object({ locks: z.array(LockInfo) }),
      idempotent: true,
      readonly: true,
    }),
  },
});
