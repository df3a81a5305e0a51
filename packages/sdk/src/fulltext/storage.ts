import type { IndexInfo } from './fulltext.js';
import type { QueryNode } from './query.js';

/*
 * What a full-text engine stores and searches, behind a small interface: the memory
 * engine keeps it in maps, micro server's engines in SQLite FTS5 and PostgreSQL. The
 * checks (names, ids, bounds, the parse of the query) are FulltextEngine's alone, so that
 * every engine accepts and refuses the same input; a storage sees only checked values
 * and a parsed query, which it compiles with bound parameters only.
 */

/** A document as the engine hands it to a storage: checked, flattened, its text as words. */
export interface PreparedDocument {
  id: string;
  /** the JSON text as put */
  json: string;
  /** per text field: its words (query.ts `words`), space-separated */
  text: Array<[field: string, words: string]>;
  /** per number field: its numbers */
  numbers: Array<[field: string, value: number]>;
}

/** A hit as a storage finds it. */
export interface StoredHit {
  id: string;
  json: string;
  score: number;
}

export type CreateResult = 'created' | 'exists' | 'full';

export interface FulltextStorage {
  /** makes the index unless it exists or the namespace has `max` indexes already */
  createIndex(namespace: string, index: string, max: number, now: number): Promise<CreateResult>;
  /** false when there was no such index */
  dropIndex(namespace: string, index: string): Promise<boolean>;
  /** the namespace's indexes, by name (code point order) */
  indexes(namespace: string): Promise<IndexInfo[]>;
  /** replaces the document of its id; false when the index is missing (nothing stored) */
  put(namespace: string, index: string, doc: PreparedDocument): Promise<boolean>;
  /** deletes the document (missing: fine); false when the index is missing */
  delete(namespace: string, index: string, id: string): Promise<boolean>;
  /**
   * The hits of `query`, best first (score descending, then id), at most `limit`;
   * undefined when the index is missing.
   */
  search(namespace: string, index: string, query: QueryNode, limit: number): Promise<StoredHit[] | undefined>;
  /** removes every index of the namespace with its documents */
  deleteNamespace(namespace: string): Promise<void>;
  close(): Promise<void>;
}
