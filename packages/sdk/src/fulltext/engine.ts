import { Conflict, NotFound } from '../errors/errors.js';
import { checkId, checkIndex, checkLimit, checkNamespace, checkQuery, prepare } from './checks.js';
import { FULLTEXT_ERROR_ID, FULLTEXT_LIMITS, type Fulltext, type FulltextDocument, type FulltextHit, type FulltextOptions, type FulltextSearchOptions, type IndexInfo } from './fulltext.js';
import { parseQuery } from './query.js';
import type { FulltextStorage } from './storage.js';

export interface FulltextEngineOptions {
  /** the namespace of calls that name none (default `micro`) */
  namespace?: string;
  /** indexes per namespace (default FULLTEXT_LIMITS.indexes, 100) */
  maxIndexes?: number;
  /** the clock, epoch ms */
  now?: () => number;
}

/**
 * Full-text search over a FulltextStorage: every check and bound here, once, so that the
 * memory, SQLite and PostgreSQL engines refuse the same input with the same errors and
 * differ only in how they store and rank.
 */
export class FulltextEngine implements Fulltext {
  private readonly maxIndexes: number;
  private readonly now: () => number;

  constructor(
    readonly name: string,
    protected readonly storage: FulltextStorage,
    private readonly options: FulltextEngineOptions = {},
  ) {
    this.maxIndexes = options.maxIndexes ?? FULLTEXT_LIMITS.indexes;
    this.now = options.now ?? Date.now;
  }

  async createIndex(index: string, options: FulltextOptions = {}): Promise<void> {
    await this.ensure(this.ns(options), checkIndex(index));
  }

  async deleteIndex(index: string, options: FulltextOptions = {}): Promise<void> {
    const name = checkIndex(index);
    if (!(await this.storage.dropIndex(this.ns(options), name))) throw missingIndex(name);
  }

  async listIndexes(options: FulltextOptions = {}): Promise<IndexInfo[]> {
    return this.storage.indexes(this.ns(options));
  }

  async put(index: string, document: { id?: string; data: Record<string, unknown> }, options: FulltextOptions = {}): Promise<FulltextDocument> {
    const namespace = this.ns(options);
    const name = checkIndex(index);
    const doc = prepare(document);
    // made on first use; a deleteIndex racing between the two is answered as a missing index
    await this.ensure(namespace, name);
    if (!(await this.storage.put(namespace, name, doc))) throw missingIndex(name);
    return { id: doc.id, data: JSON.parse(doc.json) as Record<string, unknown> };
  }

  async delete(index: string, id: string, options: FulltextOptions = {}): Promise<void> {
    const name = checkIndex(index);
    if (!(await this.storage.delete(this.ns(options), name, checkId(id)))) throw missingIndex(name);
  }

  async search(index: string, query: string, options: FulltextSearchOptions = {}): Promise<FulltextHit[]> {
    const namespace = this.ns(options);
    const name = checkIndex(index);
    const tree = parseQuery(checkQuery(query));
    const hits = await this.storage.search(namespace, name, tree, checkLimit(options.limit));
    if (!hits) throw missingIndex(name);
    return hits.map((h) => ({ id: h.id, data: JSON.parse(h.json) as Record<string, unknown>, score: h.score }));
  }

  async close(): Promise<void> {
    await this.storage.close();
  }

  /** Deletes every index of the namespace (micro server's purge). */
  async purgeNamespace(namespace: string): Promise<void> {
    await this.storage.deleteNamespace(checkNamespace(namespace));
  }

  private async ensure(namespace: string, index: string): Promise<void> {
    const result = await this.storage.createIndex(namespace, index, this.maxIndexes, this.now());
    if (result === 'full') throw Conflict(FULLTEXT_ERROR_ID, `namespace ${namespace} has ${this.maxIndexes} indexes already, the most it may have: delete one first`);
  }

  private ns(options: FulltextOptions): string {
    return checkNamespace(options.namespace, this.options.namespace);
  }
}

export function missingIndex(index: string) {
  return NotFound(FULLTEXT_ERROR_ID, `no index "${index}"`);
}
