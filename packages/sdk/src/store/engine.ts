/**
 * What a store engine needs beside the interfaces (exported as `storeEngine`): the checks
 * every engine applies the same way, the key order, and the normalised scans. The
 * SQLite engine of micro server uses them, and so will the Postgres and NATS engines.
 */
export {
  STORE_LIMITS,
  STORE_ERROR_ID,
  DEFAULT_DATABASE,
  DEFAULT_TABLE,
  bad,
  checkDefaults,
  checkKey,
  checkLimit,
  checkMetadata,
  checkName,
  checkNamespace,
  checkOffset,
  checkTtl,
  checkValue,
  compareKeys,
  expiryOf,
  fitting,
  keyMatches,
  listScan,
  prefixUpperBound,
  printable,
  readPlan,
  resolveScope,
  reverseKey,
} from './util.js';
export type { KeyScan, ReadPlan, Scope } from './util.js';
export { QUERY_LIMITS, QUERY_OPS, MAX_QUERY_INDEXES, checkCount, checkPath, checkQuery, checkWhere, compareForOrder, matches, queriedPaths, valueAt } from './query.js';
export type { CheckedQuery, CheckedWhere } from './query.js';
export { blobChunks, blobListScan, blobNotFound, blobTooLarge, checkMaxSize } from './blob.js';
export type { BlobScan } from './blob.js';
