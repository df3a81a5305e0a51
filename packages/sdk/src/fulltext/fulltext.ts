/**
 * Full-text search: JSON documents in named indexes, found by the words of their text
 * fields and the values of their number fields, best match first. Every engine (memory,
 * the remote one that talks to `micro server`, SQLite FTS5 and PostgreSQL full-text
 * search in micro server) behaves the same, which `fulltextContract` checks:
 *
 * - An index belongs to a namespace; a namespace has at most `indexes` of them.
 * - A document is a JSON object (at most `documentBytes` as JSON, nested at most
 *   `depth` deep, at most `fields` distinct field paths). Its strings (and arrays of
 *   strings) are its text fields, its numbers (and arrays of numbers) its number fields,
 *   both by dotted path (`user.name`); other values are kept but not searchable.
 * - `put` replaces the document of that id (a new UUID when none is given); the index is
 *   made on first use. What is put is answered exactly by `search`.
 * - `search` takes the query language of query.ts, answers at most `limit` hits
 *   (default 10), ranked by how well their text matches the query's words (bm25 in
 *   SQLite and memory, ts_rank in PostgreSQL), then by id; a query without words is in
 *   id order.
 * - A missing index is a 404 (search, delete, deleteIndex); bad input a 400 naming the
 *   field, a query that does not parse a 400 with the position; nothing is half stored.
 */

/** The id fulltext errors carry. */
export const FULLTEXT_ERROR_ID = 'micro.fulltext';

/** Bounds on every input. */
export const FULLTEXT_LIMITS = Object.freeze({
  /** indexes per namespace */
  indexes: 100,
  /** an index name: letters, digits, _ - . */
  indexChars: 128,
  /** a document id, well-formed Unicode without control characters */
  idChars: 256,
  /** a document as JSON, in UTF-8 bytes */
  documentBytes: 64 * 1024,
  /** distinct field paths of a document (text and number) */
  fields: 100,
  /** objects and arrays nested in a document */
  depth: 8,
  /** a word is cut to this many characters, in documents and queries alike */
  wordChars: 64,
  /** a query, in characters */
  queryChars: 2048,
  /** conditions of a query */
  queryConditions: 32,
  /** parentheses nested in a query */
  queryDepth: 16,
  /** words of one quoted value */
  termsPerValue: 16,
  defaultLimit: 10,
  maxLimit: 100,
  namespaceChars: 255,
});

export interface FulltextDocument {
  id: string;
  /** the JSON object as it was put */
  data: Record<string, unknown>;
}

export interface FulltextHit extends FulltextDocument {
  /** how well it matched: higher is better; 0 for a query without words */
  score: number;
}

export interface IndexInfo {
  name: string;
  /** epoch ms */
  created: number;
  documents: number;
}

export interface FulltextOptions {
  /** default: the engine's (memory: `micro`; remote: the caller's own) */
  namespace?: string;
}

export interface FulltextSearchOptions extends FulltextOptions {
  /** hits at most: default 10, at most 100 */
  limit?: number;
}

export interface Fulltext {
  readonly name: string;
  /** Makes the index; making one that exists is not an error. 409 past `indexes` per namespace. */
  createIndex(index: string, options?: FulltextOptions): Promise<void>;
  /** Deletes the index and its documents; 404 when there is none. */
  deleteIndex(index: string, options?: FulltextOptions): Promise<void>;
  /** The namespace's indexes, by name. */
  listIndexes(options?: FulltextOptions): Promise<IndexInfo[]>;
  /** Stores the document (replacing the one of its id), making the index on first use. */
  put(index: string, document: { id?: string; data: Record<string, unknown> }, options?: FulltextOptions): Promise<FulltextDocument>;
  /** Deletes the document (a missing one is not an error); 404 when the index is missing. */
  delete(index: string, id: string, options?: FulltextOptions): Promise<void>;
  /** The best hits of the query; 404 when the index is missing. */
  search(index: string, query: string, options?: FulltextSearchOptions): Promise<FulltextHit[]>;
  close?(): Promise<void>;
}
