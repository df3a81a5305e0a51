import type { Client } from '../client/client.js';
import { createClient, type TypedClient } from '../client/typed.js';
import { MicroError, ServiceUnavailable } from '../errors/errors.js';
import { CONFIG_ERROR_ID, type Config, type ConfigChange, type ConfigGetOptions, type ConfigOptions, type ConfigSetOptions, type ConfigValue, type ConfigWatcher } from './config.js';
import { configService } from './definition.js';

/**
 * Config through the config service of a `micro server`, reached with `client` (whose
 * address is the server's; see platformClient). Calls without a namespace act in the
 * caller's own.
 *
 * A watcher lives as long as its stream: when the connection to the server is lost (or
 * the server stops), its loop throws a 503 that says so. It does not reconnect by itself:
 * watch again once the server is back — a new watch yields the current value first, so
 * nothing that changed in between is missed.
 */
export class RemoteConfig implements Config {
  readonly name = 'remote';
  private readonly api: TypedClient<typeof configService>;

  constructor(client: Client) {
    this.api = createClient(configService, client);
  }

  async get(path?: string, options: ConfigGetOptions = {}): Promise<ConfigValue | undefined> {
    const res = await this.api.Get({ path, namespace: options.namespace, secrets: options.secrets });
    return res.found ? ((res.value ?? null) as ConfigValue) : undefined;
  }

  async set(path: string, value: ConfigValue, options: ConfigSetOptions = {}): Promise<void> {
    await this.api.Set({ path, value, secret: options.secret, namespace: options.namespace });
  }

  async delete(path: string, options: ConfigOptions = {}): Promise<boolean> {
    return (await this.api.Delete({ path, namespace: options.namespace })).deleted;
  }

  watch(path?: string, options: ConfigOptions = {}): ConfigWatcher {
    const stream = this.api.Watch({ path, namespace: options.namespace });
    let stopped = false;
    const stop = () => {
      if (stopped) return;
      stopped = true;
      stream.cancel('watch stopped');
    };
    const iterator: AsyncIterableIterator<ConfigChange> = {
      next: async () => {
        if (stopped) return { value: undefined, done: true };
        try {
          const r = await stream.next();
          if (r.done) stopped = true;
          return r as IteratorResult<ConfigChange>;
        } catch (err) {
          // a watcher stopped by its owner just ends
          if (stopped || (err instanceof MicroError && err.code === 499)) return { value: undefined, done: true };
          stopped = true;
          if (err instanceof MicroError && err.name === 'ConnectionError') {
            throw ServiceUnavailable(CONFIG_ERROR_ID, `config watch ended: the connection to micro server was lost (${err.detail}); watch again once it is back`);
          }
          throw err;
        }
      },
      return: async () => {
        stop();
        return { value: undefined, done: true };
      },
      [Symbol.asyncIterator]: () => iterator,
    };
    return { stop, [Symbol.asyncIterator]: () => iterator };
  }
}
