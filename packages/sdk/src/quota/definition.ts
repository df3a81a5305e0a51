import { z } from 'zod';
import { defineService, endpoint } from '../service/definition.js';

/** What a namespace is limited in (integers; bytes, millicores, counts, requests a second). */
export const QUOTA_LIMIT_KEYS = ['services', 'instancesPerService', 'memoryPerInstance', 'cpuPerInstance', 'storeBytes', 'storeRecords', 'blobBytes', 'apiKeys', 'requestsPerSecond', 'cacheBytes', 'members', 'requestsPerMonth', 'eventsBytes', 'eventRetention'] as const;

const Namespace = z.string().max(128);
const LimitsInForce = z.record(z.string(), z.number().nullable()).describe('each limit: a whole number, or null for unlimited (namespace micro)');
const Usage = z.record(z.string(), z.number()).describe('what the namespace uses of each counted limit');

export const QuotaReadResponse = z.object({
  namespace: z.string(),
  limits: LimitsInForce,
  usage: Usage,
  /** the keys the namespace has set; the others are the platform defaults */
  custom: z.array(z.string()),
});
export type QuotaReadResponse = z.infer<typeof QuotaReadResponse>;

/**
 * Quotas: per-namespace limits, enforced where each resource is used (runtime, store,
 * API keys, cache, team invites, gateway). A refusal there is a 403 (a rate: 429) whose
 * detail names the limit and usage.
 */
export const quotaService = defineService({
  name: 'quota',
  version: '1.0.0',
  description: 'The limits of a namespace and what it uses of them',
  endpoints: {
    Read: endpoint({
      description: 'Limits and usage of a namespace (default the caller\'s; others need an admin of micro)',
      request: z.object({ namespace: Namespace.optional() }),
      response: QuotaReadResponse,
      idempotent: true,
      readonly: true,
    }),
    Set: endpoint({
      description: `Sets limits of a namespace (admins of micro): whole numbers >= 0 for any of ${QUOTA_LIMIT_KEYS.join(', ')}; keys left out keep their value`,
      // checked strictly by the service, which names the key at fault
      request: z.object({ namespace: Namespace, limits: z.record(z.string().max(64), z.unknown()) }),
      response: QuotaReadResponse,
      idempotent: true,
    }),
  },
});
export type QuotaService = typeof quotaService;
