/**
 * `@micro/sdk/testing`: the behaviour every engine of a core service must have, as
 * node:test suites. The SDK runs them against its in-memory engines, the server against
 * SQLite and over RPC, later engines (Postgres, NATS) against theirs. Kept out of the
 * main entry point so that services never load node:test.
 */
export { storeContract, blobStoreContract } from './store/contract.js';
export type { Made as StoreContractImpl, MadeBlobStore as BlobStoreContractImpl } from './store/contract.js';
export { configContract } from './config/contract.js';
export { registryContract } from './registry/contract.js';
export { syncContract } from './sync/contract.js';
export { eventsContract } from './events/contract.js';
export { cacheContract } from './cache/contract.js';
export type { MadeCache as CacheContractImpl } from './cache/contract.js';
export { fulltextContract } from './fulltext/contract.js';
export type { MadeFulltext as FulltextContractImpl } from './fulltext/contract.js';
export type { EventsGaps, EventsHarness } from './events/contract.js';
export { engineUrl, processAlive, testPrefix, TEST_ENGINE_URLS, freePort, privateNats, privateRedis, REDIS_SERVER_BIN } from './engines/testing.js';
export type { EngineName, PrivateServer } from './engines/testing.js';
export { brokerContract } from './broker/contract.js';
export type { MakeBroker, ContractBroker } from './broker/contract.js';
