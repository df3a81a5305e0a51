import type { NamespaceOptions, RegisterOptions, Registry, ServiceRecord, WatchEvent, Watcher, WatchOptions } from './registry.js';

/**
 * A registry opened on first use. The nats profile's registry (a JetStream KV bucket)
 * needs a connection, and loading nats.js costs start time: a service that is given
 * one by default (client/defaults.ts) connects when it first registers or looks up.
 * A failed open is tried again by the next call.
 */
export class LazyRegistry implements Registry {
  private opened: Promise<Registry> | undefined;
  private closed = false;

  constructor(
    readonly name: string,
    private readonly open: () => Promise<Registry>,
  ) {}

  private registry(): Promise<Registry> {
    if (this.closed) return Promise.reject(new Error(`the ${this.name} registry is closed`));
    this.opened ??= this.open().catch((err: unknown) => {
      this.opened = undefined;
      throw err;
    });
    return this.opened;
  }

  async register(service: ServiceRecord, options?: RegisterOptions & NamespaceOptions): Promise<void> {
    return (await this.registry()).register(service, options);
  }

  async deregister(service: ServiceRecord, options?: NamespaceOptions): Promise<void> {
    return (await this.registry()).deregister(service, options);
  }

  async getService(name: string, options?: NamespaceOptions): Promise<ServiceRecord[]> {
    return (await this.registry()).getService(name, options);
  }

  async listServices(options?: NamespaceOptions): Promise<ServiceRecord[]> {
    return (await this.registry()).listServices(options);
  }

  watch(options?: WatchOptions): Watcher {
    let inner: Watcher | undefined;
    let stopped = false;
    const opening = this.registry();
    return {
      stop() {
        stopped = true;
        inner?.stop();
      },
      async *[Symbol.asyncIterator](): AsyncIterator<WatchEvent> {
        const registry = await opening;
        if (stopped) return;
        inner = registry.watch(options);
        yield* inner;
      },
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    const registry = await this.opened?.catch(() => undefined);
    this.opened = undefined;
    await registry?.close?.();
  }
}
