import { z } from 'zod';
import { defineService, endpoint, serverStream } from '../service/definition.js';
import { createClient, type TypedClient } from '../client/typed.js';
import type { Client } from '../client/client.js';
import type { NamespaceOptions, RegisterOptions, Registry, ServiceRecord, WatchEvent, WatchOptions, Watcher } from './registry.js';

/**
 * The registry as a service: `micro server` serves it, and services and the CLI use it
 * through RemoteRegistry. The schemas describe the shape; the registry behind the
 * service checks every bound (lengths, sizes) itself, the same way for every engine.
 */
const Metadata = z.record(z.string(), z.string());
const Endpoint = z.object({
  name: z.string(),
  kind: z.enum(['unary', 'server', 'client', 'bidi']),
  request: z.record(z.string(), z.unknown()),
  response: z.record(z.string(), z.unknown()),
  description: z.string().optional(),
  idempotent: z.boolean().optional(),
  readonly: z.boolean().optional(),
  // bounds checked by the registry (util.ts), the same way for every engine
  price: z.number().optional(),
  freeQuota: z.number().optional(),
  metadata: Metadata.optional(),
});
const Node = z.object({ id: z.string(), address: z.string(), metadata: Metadata.optional() });
export const ServiceRecordSchema = z.object({
  name: z.string(),
  version: z.string(),
  namespace: z.string().optional(),
  description: z.string().optional(),
  metadata: Metadata.optional(),
  endpoints: z.array(Endpoint),
  nodes: z.array(Node),
});
const Namespace = z.string().max(255).optional();

export const registryService = defineService({
  name: 'registry',
  version: '1.0.0',
  description: 'Where services say where they are and what they offer',
  endpoints: {
    Register: endpoint({
      request: z.object({ service: ServiceRecordSchema, ttl: z.number().optional(), namespace: Namespace }),
      response: z.object({}),
      idempotent: true,
    }),
    Deregister: endpoint({ request: z.object({ service: ServiceRecordSchema, namespace: Namespace }), response: z.object({}), idempotent: true }),
    GetService: endpoint({
      request: z.object({ name: z.string().min(1).max(255), namespace: Namespace }),
      response: z.object({ services: z.array(ServiceRecordSchema) }),
      idempotent: true,
      readonly: true,
    }),
    ListServices: endpoint({ request: z.object({ namespace: Namespace }), response: z.object({ services: z.array(ServiceRecordSchema) }), idempotent: true, readonly: true }),
    Watch: serverStream({
      request: z.object({ namespace: Namespace, service: z.string().max(255).optional() }),
      response: z.object({ type: z.enum(['create', 'update', 'delete']), namespace: z.string(), service: ServiceRecordSchema }),
      readonly: true,
    }),
  },
});

/** Serves a Registry as the registry service (used by `micro server`). */
export function registryHandlers(registry: Registry) {
  return {
    Register: async ({ service, ttl, namespace }: { service: ServiceRecord; ttl?: number; namespace?: string }) => {
      await registry.register(service, { ttl, namespace });
      return {};
    },
    Deregister: async ({ service, namespace }: { service: ServiceRecord; namespace?: string }) => {
      await registry.deregister(service, { namespace });
      return {};
    },
    GetService: async ({ name, namespace }: { name: string; namespace?: string }) => ({ services: await registry.getService(name, { namespace }) }),
    ListServices: async ({ namespace }: { namespace?: string }) => ({ services: await registry.listServices({ namespace }) }),
    async *Watch({ namespace, service }: { namespace?: string; service?: string }, ctx: { signal: AbortSignal }) {
      const watcher = registry.watch({ namespace, service });
      const stop = () => watcher.stop();
      ctx.signal.addEventListener('abort', stop, { once: true });
      try {
        for await (const event of watcher) yield event;
      } finally {
        ctx.signal.removeEventListener('abort', stop);
        watcher.stop();
      }
    },
  };
}

/**
 * A Registry that is the registry service of a `micro server`, reached through `client`
 * (whose address is the server's). What services use when MICRO_SERVER is set.
 */
export class RemoteRegistry implements Registry {
  readonly name = 'remote';
  private readonly api: TypedClient<typeof registryService>;

  constructor(client: Client) {
    this.api = createClient(registryService, client);
  }

  async register(service: ServiceRecord, options: RegisterOptions & NamespaceOptions = {}): Promise<void> {
    await this.api.Register({ service, ttl: options.ttl, namespace: options.namespace ?? service.namespace });
  }

  async deregister(service: ServiceRecord, options: NamespaceOptions = {}): Promise<void> {
    await this.api.Deregister({ service, namespace: options.namespace ?? service.namespace });
  }

  async getService(name: string, options: NamespaceOptions = {}): Promise<ServiceRecord[]> {
    return (await this.api.GetService({ name, namespace: options.namespace })).services;
  }

  async listServices(options: NamespaceOptions = {}): Promise<ServiceRecord[]> {
    return (await this.api.ListServices({ namespace: options.namespace })).services;
  }

  watch(options: WatchOptions = {}): Watcher {
    const stream = this.api.Watch({ namespace: options.namespace, service: options.service });
    return {
      stop: () => stream.cancel('watch stopped'),
      [Symbol.asyncIterator]: () => {
        const it: AsyncIterator<WatchEvent> = {
          next: async () => {
            try {
              return (await stream.next()) as IteratorResult<WatchEvent>;
            } catch (err) {
              // a watcher stopped by its owner just ends
              if ((err as { code?: number }).code === 499) return { value: undefined, done: true };
              throw err;
            }
          },
          return: async () => {
            stream.cancel('watch stopped');
            return { value: undefined, done: true };
          },
        };
        return it;
      },
    };
  }
}
