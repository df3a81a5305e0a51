/**
 * Full-text search: JSON documents in named indexes, found by words and number ranges,
 * best match first. `MemoryFulltext` for tests, `RemoteFulltext` for the fulltext service
 * of `micro server`, `FulltextEngine` + `FulltextStorage` to build an engine.
 */
export type { Fulltext, FulltextDocument, FulltextHit, FulltextOptions, FulltextSearchOptions, IndexInfo as FulltextIndexInfo } from './fulltext.js';
export { FULLTEXT_ERROR_ID, FULLTEXT_LIMITS } from './fulltext.js';
export { FulltextEngine } from './engine.js';
export type { FulltextEngineOptions } from './engine.js';
export type { CreateResult as FulltextCreateResult, FulltextStorage, PreparedDocument, StoredHit } from './storage.js';
export { MemoryFulltext, MemoryFulltextStorage } from './memory.js';
export type { MemoryFulltextOptions } from './memory.js';
export { fulltextService } from './definition.js';
export type { FulltextService } from './definition.js';
export { fulltextHandlers } from './handlers.js';
export type { FulltextHandlerOptions } from './handlers.js';
export { RemoteFulltext } from './remote.js';
export type { RemoteFulltextOptions } from './remote.js';
export { parseQuery, textLeaves, words as fulltextWords } from './query.js';
export type { QueryNode as FulltextQuery, Term as FulltextTerm, NumberOp as FulltextNumberOp } from './query.js';
