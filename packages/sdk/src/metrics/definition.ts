import { z } from 'zod';
import { defineService, endpoint } from '../service/definition.js';

const Namespace = z.string().max(64).optional().describe('default: the namespace of the caller; others need an admin of micro');

export const StatsEndpoint = z.object({
  service: z.string(),
  endpoint: z.string(),
  calls: z.number(),
  errors: z.number().describe('calls that ended with a code of 400 or more'),
  meanMs: z.number().describe('mean time per call, ms'),
  instances: z.number(),
});
export const StatsInstance = z.object({
  service: z.string(),
  instance: z.string(),
  memoryBytes: z.number().optional().describe('resident memory of its process'),
  restarts: z.number().optional().describe('restarts by the runtime'),
  state: z.string().optional().describe('runtime state'),
});
export const StatsGroup = z.object({ topic: z.string(), group: z.string(), pending: z.number().describe('events not done yet: the lag'), inflight: z.number() });
export const StatsReadResponse = z.object({
  namespace: z.string(),
  endpoints: z.array(StatsEndpoint),
  gateway: z.array(StatsEndpoint).describe('calls through the HTTP gateway'),
  instances: z.array(StatsInstance),
  groups: z.array(StatsGroup),
  unreachable: z.array(z.string()).describe('instances that did not answer Debug.Metrics'),
  dropped: z.number().describe('malformed or excess metrics left out'),
});
export type StatsReadResponse = z.infer<typeof StatsReadResponse>;

/**
 * Metrics of a namespace, collected by micro server from every instance (Debug.Metrics),
 * the gateway, the runtime and the events engine. `GET /metrics` on the gateway serves
 * the same in the Prometheus text format.
 */
export const statsService = defineService({
  name: 'stats',
  version: '1.0.0',
  description: 'Calls, errors and latency per endpoint, instances and consumer lag, per namespace',
  endpoints: {
    Read: endpoint({
      description: 'The figures of a namespace as a table (micro stats)',
      request: z.object({ namespace: Namespace }),
      response: StatsReadResponse,
      idempotent: true,
      readonly: true,
    }),
    Prometheus: endpoint({
      description: 'The figures of a namespace in the Prometheus text format (as GET /metrics)',
      request: z.object({ namespace: Namespace }),
      response: z.object({ text: z.string() }),
      idempotent: true,
      readonly: true,
    }),
  },
});
export type StatsService = typeof statsService;
