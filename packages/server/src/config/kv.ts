import type { NatsConnection } from '@nats-io/transport-node';
import type { KV, KvEntry } from '@nats-io/kv';
import {
  CONFIG_ERROR_ID,
  ConfigCipher,
  DocumentConfig,
  checkPrefix,
  configService,
  errors,
  type ChangeIntent,
  type ConfigObject,
  type DocumentUpdate,
  type StoredDocument,
  type Profile,
  type TransactResult,
} from '@micro/sdk';
import { checkConnected, checkValueSize, decodeKeySegment, encodeKeySegment, isStaleWrite, natsError, openBucket, packValue, trackConnection, unpackValue } from '@micro/sdk/nats';
import type { CoreServiceFactory } from '../core.js';
import { onSharedNats } from '../shared-nats.js';
import { configHandlers } from './handlers.js';
import { CONFIG_KEY_ENV, loadSharedConfigKey } from './key.js';
import { configCoreService } from './index.js';

/**
 * Config on a JetStream key-value bucket, `<prefix>_config`: what several micro server
 * nodes share in the nats profile. The same rules as the SQLite engine by construction
 * (both are a DocumentConfig; only reading and replacing a document differ):
 *
 * - One key per namespace, `ns.<namespace encoded>`, holding its whole document (secrets
 *   as encrypted markers), its version, and the set or delete that made it — so that every
 *   node can tell its watchers what changed, whoever changed it.
 * - A change reads the document and writes it back only if its revision is still the one
 *   read (KV update with the expected revision): concurrent writers on any node never lose
 *   a write; the loser reads again and applies its change again. Acknowledged by JetStream
 *   = stored (see the README for what JetStream promises about the disk).
 * - Watchers: one KV watch of the bucket's new writes per node feeds the watchers of that
 *   node; each starts with the current document read directly, and hears of every later
 *   version (older ones are dropped by version number).
 * - Secrets are sealed with the node's key (MICRO_CONFIG_SECRET_KEY, else derived from
 *   MICRO_AUTH_KEY, which every node has — see loadSharedConfigKey): the bucket keeps its
 *   fingerprint, written once by the first node, and a node with another key does not start.
 * - NATS away: calls fail at once with a 503; they work again when NATS is back.
 */

export interface KvConfigOptions {
  /** what the bucket's name starts with: `<prefix>_config` (default `micro`, see MICRO_PREFIX) */
  prefix?: string;
  cipher: ConfigCipher;
  /** the namespace of calls that name none (default `micro`) */
  defaultNamespace?: string;
  /** replicas of the bucket, when this node creates it (default 1) */
  replicas?: number;
}

const FORMAT_VERSION = 1;
const FINGERPRINT_KEY = 'meta.key_fingerprint';
/** writes of one namespace by others, one after the other, that a change may lose to before it gives up */
const MAX_ATTEMPTS = 50;
const CACHE_ENTRIES = 128;

/** What a namespace's key holds. */
interface DocumentValue {
  v: number;
  namespace: string;
  version: number;
  op: 'set' | 'delete';
  changed: string;
  document: ConfigObject;
}

export class KvConfig extends DocumentConfig {
  readonly name = 'nats';
  readonly bucket: string;
  protected override readonly reportsChanges = true;
  /** parsed documents by namespace, reused while the revision read is the same */
  private readonly cache = new Map<string, { revision: number; stored: StoredDocument }>();
  private feed: { stop(): void } | undefined;
  private lastRevision = 0;
  private stopped = false;

  private constructor(
    private readonly nc: NatsConnection,
    private readonly kv: KV,
    bucket: string,
    options: KvConfigOptions,
  ) {
    super({ cipher: options.cipher, defaultNamespace: options.defaultNamespace });
    this.bucket = bucket;
  }

  /**
   * Opens (creating if needed) the bucket on `nc`, checks the key against the bucket's
   * and starts following changes. `nc` stays the caller's to close.
   */
  static async open(nc: NatsConnection, options: KvConfigOptions): Promise<KvConfig> {
    const bucket = `${checkPrefix(options.prefix ?? 'micro')}_config`;
    trackConnection(nc);
    const kv = await openBucket(nc, bucket, { replicas: options.replicas ?? 1, description: 'micro config: one JSON document per namespace' });
    await checkKey(kv, bucket, options.cipher);
    const config = new KvConfig(nc, kv, bucket, options);
    const status = await kv.status();
    config.lastRevision = status.streamInfo.state.last_seq;
    await config.startFeed();
    return config;
  }

  protected async load(namespace: string): Promise<StoredDocument> {
    checkConnected(this.nc, CONFIG_ERROR_ID, 'cannot read the config');
    return this.decode(namespace, await this.read(namespace));
  }

  protected async transact(namespace: string, change: (current: StoredDocument) => DocumentUpdate | undefined, intent: ChangeIntent): Promise<TransactResult> {
    checkConnected(this.nc, CONFIG_ERROR_ID, 'cannot change the config');
    const key = keyOf(namespace);
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const entry = await this.read(namespace);
      const before = this.decode(namespace, entry);
      const update = change(before);
      if (!update) return { before };
      const version = before.version + 1;
      // the document's JSON is already made (and size-checked): put around it, not parsed again
      const json = `{"v":${FORMAT_VERSION},"namespace":${JSON.stringify(namespace)},"version":${version},"op":${JSON.stringify(intent.op)},"changed":${JSON.stringify(intent.path)},"document":${update.json}}`;
      const packed = packValue(json);
      checkValueSize(this.nc, packed, CONFIG_ERROR_ID, `the config of namespace ${namespace}`);
      let revision: number;
      try {
        revision = entry && entry.operation === 'PUT' ? await this.kv.update(key, packed, entry.revision) : await this.kv.create(key, packed);
      } catch (err) {
        // another node wrote since we read: read again and apply the change to that
        if (isStaleWrite(err)) continue;
        throw natsError(err, CONFIG_ERROR_ID, `cannot change the config of namespace ${namespace}`);
      }
      const after = { document: update.document, version };
      this.remember(namespace, revision, after);
      return { before, after };
    }
    throw errors.Conflict(CONFIG_ERROR_ID, `the config of namespace ${namespace} kept changing while it was being written (${MAX_ATTEMPTS} attempts); try again`);
  }

  /**
   * Deletes a namespace's whole document, secrets included (purge/): a KV purge, which
   * drops the key's history too (a delete would keep the old revisions in the stream).
   * Every node reads the key before trusting its cache, so none serves the old document.
   */
  async purgeNamespace(namespace: string): Promise<void> {
    checkConnected(this.nc, CONFIG_ERROR_ID, 'cannot purge the config');
    try {
      await this.kv.purge(keyOf(namespace));
    } catch (err) {
      throw natsError(err, CONFIG_ERROR_ID, `cannot purge the config of namespace ${namespace}`);
    }
    this.cache.delete(namespace);
  }

  protected async release(): Promise<void> {
    this.stopped = true;
    this.feed?.stop();
    this.cache.clear();
  }

  private async read(namespace: string): Promise<KvEntry | null> {
    try {
      return await this.kv.get(keyOf(namespace));
    } catch (err) {
      throw natsError(err, CONFIG_ERROR_ID, `cannot read the config of namespace ${namespace}`);
    }
  }

  /** The stored document of an entry (none, or a delete marker: an empty document at version 0). */
  private decode(namespace: string, entry: KvEntry | null): StoredDocument {
    if (!entry || entry.operation !== 'PUT') return { document: {}, version: 0 };
    const hit = this.cache.get(namespace);
    if (hit && hit.revision === entry.revision) return hit.stored;
    const value = parseValue(entry.value);
    if (!value || value.namespace !== namespace) {
      throw errors.InternalServerError(
        CONFIG_ERROR_ID,
        `the config of namespace ${namespace} in the NATS bucket ${this.bucket} is not valid: the key was written by something else than micro`,
      );
    }
    const stored = { document: value.document, version: value.version };
    this.remember(namespace, entry.revision, stored);
    return stored;
  }

  private remember(namespace: string, revision: number, stored: StoredDocument): void {
    this.cache.delete(namespace);
    this.cache.set(namespace, { revision, stored });
    if (this.cache.size > CACHE_ENTRIES) this.cache.delete(this.cache.keys().next().value as string);
  }

  /**
   * Follows the writes of every node. Only new writes: a watcher reads its first document
   * itself. After a loss (NATS restarted) it resumes after the last revision it saw.
   */
  private async startFeed(): Promise<void> {
    const open = async () => {
      const iter = await this.kv.watch({ key: 'ns.>', resumeFromRevision: this.lastRevision + 1 });
      this.feed = { stop: () => iter.stop() };
      if (this.stopped) iter.stop();
      return iter;
    };
    // the first one is open before open() returns: no change after it is missed
    let iter: Awaited<ReturnType<typeof open>> | undefined = await open();
    void (async () => {
      let delay = 250;
      while (!this.stopped) {
        try {
          iter ??= await open();
          delay = 250;
          for await (const entry of iter) this.apply(entry);
        } catch {
          // NATS away or the consumer lost: start again after the last revision seen
        }
        iter = undefined;
        if (this.stopped) return;
        await new Promise((resolve) => setTimeout(resolve, delay).unref());
        delay = Math.min(delay * 2, 5_000);
      }
    })();
  }

  private apply(entry: KvEntry): void {
    if (entry.revision > this.lastRevision) this.lastRevision = entry.revision;
    if (entry.operation !== 'PUT') return;
    // the namespace from the key when it can be read there: no need to parse a document nobody watches
    const fromKey = decodeKeySegment(entry.key.slice(3));
    if (fromKey !== undefined && !this.isWatched(fromKey)) return;
    const value = parseValue(entry.value);
    if (!value || keyOf(value.namespace) !== entry.key || !this.isWatched(value.namespace)) return;
    const stored = { document: value.document, version: value.version };
    this.remember(value.namespace, entry.revision, stored);
    this.changed(value.namespace, value.op, value.changed, stored);
  }
}

function keyOf(namespace: string): string {
  return `ns.${encodeKeySegment(namespace)}`;
}

function parseValue(bytes: Uint8Array): DocumentValue | undefined {
  let raw: unknown;
  try {
    raw = JSON.parse(unpackValue(bytes));
  } catch {
    return undefined;
  }
  if (typeof raw !== 'object' || raw === null) return undefined;
  const v = raw as Partial<DocumentValue>;
  if (v.v !== FORMAT_VERSION || typeof v.namespace !== 'string' || !Number.isSafeInteger(v.version) || (v.version as number) < 1) return undefined;
  if ((v.op !== 'set' && v.op !== 'delete') || typeof v.changed !== 'string') return undefined;
  if (typeof v.document !== 'object' || v.document === null || Array.isArray(v.document)) return undefined;
  return v as DocumentValue;
}

/**
 * Every node must seal secrets with the same key. The first node writes the fingerprint
 * of its key (never the key) into the bucket; a node with another key refuses to start,
 * instead of writing secrets the others cannot open.
 */
async function checkKey(kv: KV, bucket: string, cipher: ConfigCipher): Promise<void> {
  const mine = cipher.fingerprint;
  let entry = await kv.get(FINGERPRINT_KEY);
  if (!entry || entry.operation !== 'PUT') {
    try {
      await kv.create(FINGERPRINT_KEY, mine);
    } catch (err) {
      if (!isStaleWrite(err)) throw err;
    }
    entry = await kv.get(FINGERPRINT_KEY);
  }
  const stored = entry?.string();
  if (stored === mine) return;
  throw new Error(
    `the config secrets in the NATS bucket ${bucket} are encrypted with another key than ${cipher.source} (key fingerprint ${stored}, given ${mine}): ` +
      `every micro server node must have the same ${CONFIG_KEY_ENV} (the node that started first made the bucket's key; ` +
      `without ${CONFIG_KEY_ENV} it is in that node's <home>/server/config-secret.key). ` +
      `If the bucket holds no secrets yet, \`nats kv del ${bucket} ${FINGERPRINT_KEY}\` lets this key become the bucket's.`,
  );
}

/**
 * The config service of micro server in the nats profile, on the process's NATS
 * connection: `CORE_SERVICES` with this in place of `configCoreService`.
 */
export function kvConfigCoreService(nc: NatsConnection, prefix: string): CoreServiceFactory {
  return async (ctx) => {
    const { key, source, generated } = loadSharedConfigKey(ctx.home);
    if (generated) {
      ctx.logger.warn(`made the key of config secrets in ${source}: with several micro server nodes, give every node the same key in ${CONFIG_KEY_ENV}`);
    }
    const config = await KvConfig.open(nc, { prefix, cipher: new ConfigCipher(key, source) });
    return { def: configService, handlers: configHandlers(config), stop: () => config.close(), purge: (namespace) => config.purgeNamespace(namespace) };
  };
}

/**
 * The config service for a profile: SQLite in <home>/data (local), or the KV bucket shared
 * by every node on the process's NATS connection (nats), given back when the service stops.
 */
export function configCoreServiceFor(profile: Profile, options: { maxWait?: number } = {}): CoreServiceFactory {
  if (profile.name !== 'nats') return configCoreService;
  return onSharedNats(profile.natsUrl, options, (nc) => kvConfigCoreService(nc, profile.prefix));
}
