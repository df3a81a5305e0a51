import type { NamespaceOptions, Registry, ServiceRecord } from '@micro/sdk';

/**
 * The metadata key of a registry node that a micro server node serves (its core
 * services, nats profile): the server node's id (home.ts nodeId).
 */
export const SERVER_NODE_KEY = 'server';

/**
 * The registry as `micro services` reads it through micro server (nats profile): nodes
 * that carry the id of a server node whose lease has ended (`ended(id)` true) are left
 * out at once, rather than after their registry TTL (30 s): their process is gone. Nodes
 * without that metadata (the services the runtimes run, which may outlive their server)
 * and nodes of servers whose lease is unknown stay; a version left without nodes is left
 * out. Writes and Watch pass through unchanged.
 */
export function withoutEndedServers(registry: Registry, ended: (server: string) => boolean | undefined): Registry {
  const live = (records: ServiceRecord[]): ServiceRecord[] =>
    records.flatMap((r) => {
      const nodes = r.nodes.filter((n) => {
        const server = n.metadata?.[SERVER_NODE_KEY];
        return server === undefined || ended(server) !== true;
      });
      if (nodes.length === r.nodes.length) return [r];
      return nodes.length > 0 ? [{ ...r, nodes }] : [];
    });
  return {
    name: registry.name,
    register: (service, options) => registry.register(service, options),
    deregister: (service, options) => registry.deregister(service, options),
    getService: async (name: string, options?: NamespaceOptions) => live(await registry.getService(name, options)),
    listServices: async (options?: NamespaceOptions) => live(await registry.listServices(options)),
    watch: (options) => registry.watch(options),
  };
}
