/**
 * What an engine of the pricing service keeps: the prices admins of micro set per
 * endpoint, which win over what the endpoint's definition says. Each engine keeps them in
 * billing's database (hub.billing: SQLite billing.db, or the platform's PostgreSQL
 * schema), beside the ledger that the calls they price are charged to.
 */
export interface PriceSetting {
  /** the namespace the service is served from (`micro` for the platform's own) */
  namespace: string;
  service: string;
  endpoint: string;
  /** units (10^-6 USD) a successful call beyond the free quota */
  price: number;
  /** successful calls a month each payer makes free of charge */
  freeQuota: number;
  /** the admin account that set it */
  setBy: string;
  /** epoch ms */
  setAt: number;
}

/**
 * The tables, in the SQL both engines speak (SQLite takes `bigint` as INTEGER): the admins'
 * prices, and one row whose version grows with every change, in the change's transaction.
 */
export const PRICING_SCHEMA = `
CREATE TABLE pricing_settings (
  namespace text NOT NULL, service text NOT NULL, endpoint text NOT NULL,
  price bigint NOT NULL CHECK (price >= 0), free_quota bigint NOT NULL CHECK (free_quota >= 0),
  set_by text NOT NULL, set_at bigint NOT NULL,
  PRIMARY KEY (namespace, service, endpoint)
);
CREATE TABLE pricing_state (id integer PRIMARY KEY CHECK (id = 1), version bigint NOT NULL);
INSERT INTO pricing_state (id, version) VALUES (1, 0);
`;

export type PriceKey = Pick<PriceSetting, 'namespace' | 'service' | 'endpoint'>;

export interface PricingStorage {
  /**
   * A number that grows with every set and clear (on every node): pricing reads it every
   * refresh and reloads the settings only when it moved.
   */
  version(): Promise<number>;
  /** every setting and the version they were read at, in one consistent read */
  load(): Promise<{ version: number; settings: PriceSetting[] }>;
  /**
   * Sets (or replaces) the price of an endpoint. A new endpoint beyond `max` settings is
   * refused (`full`); replacing one is always allowed.
   */
  set(setting: PriceSetting, max: number): Promise<'set' | 'full'>;
  /** Removes the setting; false when there was none. */
  clear(key: PriceKey): Promise<boolean>;
}

/** a row of pricing_settings (either engine: PostgreSQL's bigints come as strings) as a setting */
export function settingOf(r: { namespace: string; service: string; endpoint: string; price: number | string; free_quota: number | string; set_by: string; set_at: number | string }): PriceSetting {
  return { namespace: r.namespace, service: r.service, endpoint: r.endpoint, price: Number(r.price), freeQuota: Number(r.free_quota), setBy: r.set_by, setAt: Number(r.set_at) };
}
