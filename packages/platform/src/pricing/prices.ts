import type { Logger } from '@micro/sdk';
import type { EndpointPrice, PricedEndpoint, Pricing } from './pricing.js';
import type { PriceKey, PriceSetting, PricingStorage } from './storage.js';

export interface PricingOptions {
  /** ms between two reads of the storage's change counter (default 1,000): how late another node's change may be seen here */
  refreshMs?: number;
  /** the most prices admins may set, all namespaces together (default 10,000): each node keeps them all in memory */
  maxSettings?: number;
}

/** namespace → service → endpoint → setting: three map lookups and no string built per call */
type Settings = Map<string, Map<string, Map<string, PriceSetting>>>;

/**
 * The prices metering asks on every call, answered from memory: the admins' settings (as
 * last read from storage) over what the endpoint's own definition says. One object per
 * server, made before the storage is open (platformCoreServices gives it to metering
 * and to the pricing service's factory), attached to the storage by that factory.
 *
 * Freshness: the storage's change counter is read every `refreshMs` (one tiny query) and
 * the settings are read again only when it moved. A Set or Clear on this node reloads
 * before it answers, so this node prices the call after it at once; another node within
 * `refreshMs` plus the time of one read. When the storage cannot be read, the last
 * settings stay in force (logged), never none.
 */
export class PlatformPricing implements Pricing {
  private settings: Settings = new Map();
  private list: readonly PriceSetting[] = [];
  private version = -1;
  private storage: PricingStorage | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private failing = false;
  readonly refreshMs: number;
  readonly maxSettings: number;

  constructor(options: PricingOptions = {}) {
    this.refreshMs = options.refreshMs ?? 1_000;
    this.maxSettings = options.maxSettings ?? 10_000;
  }

  priceOf(home: string, service: string, endpoint: PricedEndpoint): EndpointPrice | undefined {
    const set = this.settings.get(home)?.get(service)?.get(endpoint.name);
    if (set) return { price: set.price, freeQuota: set.freeQuota };
    if (endpoint.price === undefined && endpoint.freeQuota === undefined) return undefined;
    return { price: endpoint.price ?? 0, freeQuota: endpoint.freeQuota ?? 0 };
  }

  /** the admin's setting of an endpoint, if any */
  setting(key: PriceKey): PriceSetting | undefined {
    return this.settings.get(key.namespace)?.get(key.service)?.get(key.endpoint);
  }

  /** every admin setting, as last read */
  settingsList(): readonly PriceSetting[] {
    return this.list;
  }

  /** Reads the settings once (a failure is thrown: a server must not start with prices it cannot read), then every refreshMs. */
  async attach(storage: PricingStorage, logger?: Logger): Promise<void> {
    // a second attach would leave the first timer running: one factory per server (detach in its stop)
    if (this.storage) throw new Error('this Pricing is attached to a storage already: createPricing gives one factory per server');
    this.storage = storage;
    try {
      await this.refresh(true);
    } catch (err) {
      this.storage = undefined;
      throw err;
    }
    this.timer = setInterval(() => {
      this.refresh().then(
        () => {
          if (this.failing) logger?.info('pricing: the prices are read again');
          this.failing = false;
        },
        (err: unknown) => {
          // the last prices stay in force; said once per outage, not every second
          if (!this.failing) logger?.warn({ err }, 'pricing: cannot read the prices; the last ones read stay in force');
          this.failing = true;
        },
      );
    }, this.refreshMs);
    this.timer.unref();
  }

  detach(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.storage = undefined;
  }

  /**
   * Reads the settings when the storage's counter moved (`force`: in any case). One read at
   * a time: a call while one runs waits for it and then reads again, so a Set's own change
   * is always in what the call after it sees.
   */
  async refresh(force = false): Promise<void> {
    while (this.running) await this.running.catch(() => undefined);
    const storage = this.storage;
    if (!storage) return;
    this.running = (async () => {
      if (!force && (await storage.version()) === this.version) return;
      const { version, settings } = await storage.load();
      this.install(version, settings);
    })();
    try {
      await this.running;
    } finally {
      this.running = undefined;
    }
  }

  private install(version: number, list: PriceSetting[]): void {
    const settings: Settings = new Map();
    for (const s of list) {
      let services = settings.get(s.namespace);
      if (!services) settings.set(s.namespace, (services = new Map()));
      let endpoints = services.get(s.service);
      if (!endpoints) services.set(s.service, (endpoints = new Map()));
      endpoints.set(s.endpoint, Object.freeze({ ...s }));
    }
    // one assignment: a call reads the old table or the new one, never half of each
    this.settings = settings;
    this.list = Object.freeze(list);
    this.version = version;
  }
}
