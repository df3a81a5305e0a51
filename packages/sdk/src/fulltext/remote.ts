import type { Client } from '../client/client.js';
import { createClient, type TypedClient } from '../client/typed.js';
import { checkId, checkIndex, checkLimit, checkNamespace, checkQuery, prepare } from './checks.js';
import { fulltextService } from './definition.js';
import type { Fulltext, FulltextDocument, FulltextHit, FulltextOptions, FulltextSearchOptions, IndexInfo } from './fulltext.js';
import { parseQuery } from './query.js';

export interface RemoteFulltextOptions {
  /** the namespace of calls that name none (default: the caller's own) */
  namespace?: string;
}

/**
 * The fulltext service of a `micro server`, reached through `client`. Inputs are checked
 * here too (the same 400s as every engine, without a round trip); the server checks
 * everything again.
 */
export class RemoteFulltext implements Fulltext {
  readonly name = 'remote';
  private readonly api: TypedClient<typeof fulltextService>;

  constructor(
    client: Client,
    private readonly defaults: RemoteFulltextOptions = {},
  ) {
    this.api = createClient(fulltextService, client);
  }

  async createIndex(index: string, options: FulltextOptions = {}): Promise<void> {
    await this.api.CreateIndex({ index: checkIndex(index), namespace: this.ns(options) });
  }

  async deleteIndex(index: string, options: FulltextOptions = {}): Promise<void> {
    await this.api.DeleteIndex({ index: checkIndex(index), namespace: this.ns(options) });
  }

  async listIndexes(options: FulltextOptions = {}): Promise<IndexInfo[]> {
    return (await this.api.ListIndexes({ namespace: this.ns(options) })).indexes;
  }

  async put(index: string, document: { id?: string; data: Record<string, unknown> }, options: FulltextOptions = {}): Promise<FulltextDocument> {
    const { id } = prepare(document);
    return (await this.api.Put({ index: checkIndex(index), id, data: document.data, namespace: this.ns(options) })) as FulltextDocument;
  }

  async delete(index: string, id: string, options: FulltextOptions = {}): Promise<void> {
    await this.api.Delete({ index: checkIndex(index), id: checkId(id), namespace: this.ns(options) });
  }

  async search(index: string, query: string, options: FulltextSearchOptions = {}): Promise<FulltextHit[]> {
    parseQuery(checkQuery(query));
    const res = await this.api.Search({ index: checkIndex(index), query, limit: checkLimit(options.limit), namespace: this.ns(options) });
    return res.hits as FulltextHit[];
  }

  private ns(options: FulltextOptions): string | undefined {
    const namespace = options.namespace ?? this.defaults.namespace;
    return namespace === undefined ? undefined : checkNamespace(namespace);
  }
}
