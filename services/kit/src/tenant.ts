import type { Context, Store, StoreCountOptions as CountOptions, StoreQueryOptions as QueryOptions, StoreDeleteOptions as DeleteOptions, StoreListOptions as ListOptions, StoreReadOptions as ReadOptions, StoreRecord, StoreWriteOptions as WriteOptions } from '@micro/sdk';

/**
 * A value-add service keeps each caller's data in the caller's own namespace (ctx.tenant:
 * the service's namespace, or the caller's when it runs as a public service of micro), so
 * that the namespace's quotas count it and deleting the namespace deletes it. Every read
 * and write goes through one of these views, which fix the namespace and the database:
 * a request field can choose a table or a key, never another tenant.
 */
export interface TenantStore {
  read(key: string, options?: Omit<ReadOptions, 'namespace' | 'database'>): Promise<StoreRecord[]>;
  write(record: StoreRecord, options?: Omit<WriteOptions, 'namespace' | 'database'>): Promise<void>;
  delete(key: string, options?: Omit<DeleteOptions, 'namespace' | 'database'>): Promise<void>;
  list(options?: Omit<ListOptions, 'namespace' | 'database'>): Promise<string[]>;
  tables(): Promise<string[]>;
  /** records whose values match a where, evaluated by the engine (Store.query) */
  query(options?: Omit<QueryOptions, 'namespace' | 'database'>): Promise<StoreRecord[]>;
  count(options?: Omit<CountOptions, 'namespace' | 'database'>): Promise<number>;
}

/** The store of the calling tenant, in database `database` (by convention the service's name). */
export function tenantStore(store: Store, ctx: Pick<Context, 'tenant'>, database: string): TenantStore {
  const scope = { namespace: ctx.tenant, database };
  return {
    read: (key, options) => store.read(key, { ...options, ...scope }),
    write: (record, options) => store.write(record, { ...options, ...scope }),
    delete: (key, options) => store.delete(key, { ...options, ...scope }),
    list: (options) => store.list({ ...options, ...scope }),
    tables: () => store.tables({ namespace: ctx.tenant, database, limit: 1000 }),
    query: (options) => store.query({ ...options, ...scope }),
    count: (options) => store.count({ ...options, ...scope }),
  };
}
