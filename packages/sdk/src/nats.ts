/**
 * `@micro/sdk/nats`: the engines of the nats profile that load nats.js when imported —
 * the registry on a JetStream KV bucket and the helpers KV engines share. Kept out of
 * the main entry point, which every service imports: nats.js costs about 120 ms of start
 * time. (The NATS transport and broker are in the main entry point: they load nats.js
 * only when first used.)
 */
export { KvRegistry, openRegistry } from './registry/nats-kv.js';
export type { KvRegistryOptions } from './registry/nats-kv.js';
export {
  acquireNats,
  encodeKeySegment,
  decodeKeySegment,
  packValue,
  unpackValue,
  checkValueSize,
  openBucket,
  isStaleWrite,
  trackConnection,
  checkConnected,
  natsError,
} from './engines/nats-kv.js';
