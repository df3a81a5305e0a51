import { ensureBillingSchema, type BillingEngines } from '../billing/engines.js';
import { PRICING_SCHEMA, settingOf, type PriceKey, type PriceSetting, type PricingStorage } from './storage.js';

/**
 * The pricing storage of the local profile: two tables in billing.db (the ledger's file,
 * opened once by the hub). better-sqlite3 is synchronous, so each method is one
 * transaction that nothing else on this connection interleaves with; `set` counts and
 * inserts in one IMMEDIATE transaction (the write lock first), so `max` holds even for a
 * second process on the same file.
 */

export const PRICING_SQLITE_VERSION = 1;

type Database = NonNullable<BillingEngines['sqlite']>;

interface Row {
  namespace: string;
  service: string;
  endpoint: string;
  price: number;
  free_quota: number;
  set_by: string;
  set_at: number;
}

export function openSqlitePricing(db: Database): PricingStorage {
  ensureBillingSchema(db, 'pricing', PRICING_SQLITE_VERSION, () => db.exec(PRICING_SCHEMA));
  const version = db.prepare<[], { version: number }>('SELECT version FROM pricing_state WHERE id = 1');
  const all = db.prepare<[], Row>('SELECT * FROM pricing_settings ORDER BY namespace, service, endpoint');
  const bump = db.prepare('UPDATE pricing_state SET version = version + 1 WHERE id = 1');
  const exists = db.prepare<[string, string, string], { one: number }>('SELECT 1 AS one FROM pricing_settings WHERE namespace = ? AND service = ? AND endpoint = ?');
  const count = db.prepare<[], { n: number }>('SELECT COUNT(*) AS n FROM pricing_settings');
  const upsert = db.prepare(
    `INSERT INTO pricing_settings (namespace, service, endpoint, price, free_quota, set_by, set_at) VALUES (?, ?, ?, ?, ?, ?, ?)
     ON CONFLICT (namespace, service, endpoint) DO UPDATE SET price = excluded.price, free_quota = excluded.free_quota, set_by = excluded.set_by, set_at = excluded.set_at`,
  );
  const remove = db.prepare('DELETE FROM pricing_settings WHERE namespace = ? AND service = ? AND endpoint = ?');
  const load = db.transaction(() => ({ version: version.get()?.version ?? 0, settings: all.all().map(settingOf) }));
  const set = db.transaction((s: PriceSetting, max: number): 'set' | 'full' => {
    if (!exists.get(s.namespace, s.service, s.endpoint) && (count.get()?.n ?? 0) >= max) return 'full';
    upsert.run(s.namespace, s.service, s.endpoint, s.price, s.freeQuota, s.setBy, s.setAt);
    bump.run();
    return 'set';
  });
  const clear = db.transaction((k: PriceKey): boolean => {
    if (remove.run(k.namespace, k.service, k.endpoint).changes === 0) return false;
    bump.run();
    return true;
  });
  return {
    version: async () => version.get()?.version ?? 0,
    load: async () => load.deferred(),
    set: async (s, max) => set.immediate(s, max),
    clear: async (k) => clear.immediate(k),
  };
}
