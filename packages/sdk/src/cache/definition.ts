import { z } from 'zod';
import { defineService, endpoint } from '../service/definition.js';
import { CACHE_LIMITS } from './cache.js';

/**
 * The cache as a service, after M3O's Cache API: `micro server` serves it (in memory, or
 * Redis in the nats profile) and RemoteCache uses it. The schemas give the shape and
 * loose bounds (in characters); the engine behind the service checks the exact ones
 * (bytes, characters, JSON) itself, the same way for every engine.
 */

const LIMITS = CACHE_LIMITS;
const Key = z.string().max(LIMITS.keyBytes);
const Namespace = z.string().max(LIMITS.namespaceChars).optional().describe('default: the namespace of the caller; others need an admin of micro');
// int64 fields travel as strings in some JSON APIs (M3O's clients among them): both are taken
const Delta = z
  .union([z.number().int(), z.string().max(20)])
  .optional()
  .describe(`an integer (default 1), at most ${Number.MAX_SAFE_INTEGER} either way`);
const Counter = z.object({ key: z.string(), value: z.number().int().describe('the value after the change') });

export const cacheService = defineService({
  name: 'cache',
  version: '1.0.0',
  description: 'A fast key-value cache with TTLs and atomic counters, namespaced',
  endpoints: {
    Set: endpoint({
      description: 'Stores a value (any JSON, at most 1 MiB) at key, replacing its value and TTL',
      request: z.object({
        key: Key,
        value: z.unknown().describe('any JSON value'),
        ttl: z.number().min(0).max(LIMITS.maxTtlSeconds).optional().describe('seconds until the key expires (absent or 0: never)'),
        namespace: Namespace,
      }),
      response: z.object({ status: z.string() }),
      idempotent: true,
    }),
    Get: endpoint({
      description: 'The value at key and the seconds it has left (0: no expiry); 404 when it is missing or expired',
      request: z.object({ key: Key, namespace: Namespace }),
      response: z.object({ key: z.string(), value: z.unknown(), ttl: z.number().int().describe('whole seconds left (rounded up), 0 when it does not expire') }),
      idempotent: true,
      readonly: true,
    }),
    Delete: endpoint({
      description: 'Deletes the key (deleting a missing one is not an error)',
      request: z.object({ key: Key, namespace: Namespace }),
      response: z.object({ status: z.string() }),
      idempotent: true,
    }),
    Increment: endpoint({
      description: 'Adds value (default 1) to the integer at key, atomically; a missing key counts from 0; 409 when it holds no integer',
      request: z.object({ key: Key, value: Delta, namespace: Namespace }),
      response: Counter,
    }),
    Decrement: endpoint({
      description: 'Subtracts value (default 1) from the integer at key, atomically; a missing key counts from 0; 409 when it holds no integer',
      request: z.object({ key: Key, value: Delta, namespace: Namespace }),
      response: Counter,
    }),
    ListKeys: endpoint({
      description: 'Keys of the namespace, sorted, at most limit',
      request: z.object({
        prefix: Key.optional().describe('only keys that start with this (literally: no wildcards)'),
        limit: z.number().int().min(1).max(LIMITS.maxLimit).optional().describe(`default ${LIMITS.defaultLimit}, at most ${LIMITS.maxLimit}`),
        namespace: Namespace,
      }),
      response: z.object({ keys: z.array(z.string()) }),
      idempotent: true,
      readonly: true,
    }),
  },
});

export type CacheService = typeof cacheService;
