import { ConfigCipher } from './cipher.js';
import { DocumentConfig, type DocumentUpdate, type StoredDocument } from './document.js';

export interface MemoryConfigOptions {
  /** the cipher of secrets (default: one with a random key, for this process only) */
  cipher?: ConfigCipher;
  /** the namespace of calls that name none (default `micro`) */
  defaultNamespace?: string;
}

/**
 * Config in this process only, for tests: the same rules, bounds, merges, secrets
 * (encrypted under a random key) and watchers as the server's, kept in a Map.
 */
export class MemoryConfig extends DocumentConfig {
  readonly name = 'memory';
  private readonly documents = new Map<string, StoredDocument>();

  constructor(options: MemoryConfigOptions = {}) {
    super({ cipher: options.cipher ?? ConfigCipher.random(), defaultNamespace: options.defaultNamespace });
  }

  protected load(namespace: string): StoredDocument {
    return this.documents.get(namespace) ?? { document: {}, version: 0 };
  }

  protected transact(namespace: string, change: (current: StoredDocument) => DocumentUpdate | undefined): { before: StoredDocument; after?: StoredDocument } {
    const before = this.load(namespace);
    const update = change(before);
    if (!update) return { before };
    const after = { document: update.document, version: before.version + 1 };
    this.documents.set(namespace, after);
    return { before, after };
  }

  protected async release(): Promise<void> {
    this.documents.clear();
  }
}
