/**
 * The registry: where services say where they are and what they offer.
 *
 * Every record belongs to one namespace (default `micro`). A service record lists its
 * endpoints, with the JSON Schemas of their requests and responses (derived from the
 * zod schemas), and its nodes, one per running instance. Nodes carry a TTL: an instance
 * that stops heart-beating (re-registering) drops out of the registry when it expires.
 */

export const DEFAULT_NAMESPACE = 'micro';

/** JSON Schema (draft 2020-12) as produced by zod's toJSONSchema. */
export type JSONSchema = Record<string, unknown>;

export type StreamKind = 'unary' | 'server' | 'client' | 'bidi';

export interface EndpointRecord {
  /** e.g. `Call` or `Greeter.Hello` */
  name: string;
  kind: StreamKind;
  request: JSONSchema;
  response: JSONSchema;
  description?: string;
  /** safe to retry after the request reached the server */
  idempotent?: boolean;
  /** changes nothing: the API gateway lets GET reach it (other endpoints are POST only) */
  readonly?: boolean;
  /** units (10^-6 USD) a successful call costs beyond the free quota, as the service defines it (platform admins may set another); set, the endpoint is metered */
  price?: number;
  /** successful calls a month each payer makes free of charge, as the service defines it; set, the endpoint is metered */
  freeQuota?: number;
  metadata?: Record<string, string>;
}

export interface NodeRecord {
  /** unique per running instance */
  id: string;
  /** `tcp://host:port` or `unix:///path/to.sock` */
  address: string;
  metadata?: Record<string, string>;
}

export interface ServiceRecord {
  name: string;
  version: string;
  namespace?: string;
  description?: string;
  metadata?: Record<string, string>;
  endpoints: EndpointRecord[];
  nodes: NodeRecord[];
}

export interface RegisterOptions {
  /** seconds until the nodes expire unless registered again; 0 or absent = no expiry */
  ttl?: number;
}

export interface NamespaceOptions {
  namespace?: string;
}

export type WatchEventType = 'create' | 'update' | 'delete';

export interface WatchEvent {
  type: WatchEventType;
  /** the namespace the service belongs to */
  namespace: string;
  /** for `delete`, the record as it was (its nodes are the ones that went away) */
  service: ServiceRecord;
}

export interface WatchOptions extends NamespaceOptions {
  /** only events of this service */
  service?: string;
}

/** An async iterator of registry changes; `stop()` (or breaking out of a for-await) ends it. */
export interface Watcher extends AsyncIterable<WatchEvent> {
  stop(): void;
}

export interface Registry {
  readonly name: string;
  /**
   * Adds or refreshes the nodes of a service version. Registering the same node again
   * refreshes its TTL (the heart-beat). Endpoints and metadata of the version are replaced.
   */
  register(service: ServiceRecord, options?: RegisterOptions & NamespaceOptions): Promise<void>;
  /** Removes the given nodes of the service version; the version goes when it has none left. */
  deregister(service: ServiceRecord, options?: NamespaceOptions): Promise<void>;
  /** Every version of the service that has live nodes, each with its live nodes. Empty when unknown. */
  getService(name: string, options?: NamespaceOptions): Promise<ServiceRecord[]>;
  /** Every service of the namespace (one record per version). */
  listServices(options?: NamespaceOptions): Promise<ServiceRecord[]>;
  watch(options?: WatchOptions): Watcher;
  close?(): Promise<void>;
}
