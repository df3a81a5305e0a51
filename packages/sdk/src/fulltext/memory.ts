/*
 * Full-text search in this process's memory: the SDK's default without MICRO_SERVER, for
 * tests and development. Ranks as SQLite FTS5 does (bm25 over the text of each field,
 * k1 = 1.2, b = 0.75), by scanning the index: fine for thousands of documents, not more.
 */

import { FulltextEngine, type FulltextEngineOptions } from './engine.js';
import type { IndexInfo } from './fulltext.js';
import type { QueryNode, Term } from './query.js';
import type { CreateResult, FulltextStorage, PreparedDocument, StoredHit } from './storage.js';

interface Row {
  words: string[];
}

interface Doc {
  id: string;
  json: string;
  text: Map<string, Row>;
  numbers: Array<[string, number]>;
}

interface Index {
  created: number;
  docs: Map<string, Doc>;
}

type TextLeaf = Extract<QueryNode, { kind: 'text' }>;

export class MemoryFulltextStorage implements FulltextStorage {
  private readonly spaces = new Map<string, Map<string, Index>>();

  async createIndex(namespace: string, index: string, max: number, now: number): Promise<CreateResult> {
    const space = this.spaces.get(namespace) ?? new Map<string, Index>();
    if (space.has(index)) return 'exists';
    if (space.size >= max) return 'full';
    space.set(index, { created: now, docs: new Map() });
    this.spaces.set(namespace, space);
    return 'created';
  }

  async dropIndex(namespace: string, index: string): Promise<boolean> {
    return this.spaces.get(namespace)?.delete(index) ?? false;
  }

  async indexes(namespace: string): Promise<IndexInfo[]> {
    const space = this.spaces.get(namespace) ?? new Map<string, Index>();
    return [...space].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([name, i]) => ({ name, created: i.created, documents: i.docs.size }));
  }

  async put(namespace: string, index: string, doc: PreparedDocument): Promise<boolean> {
    const i = this.index(namespace, index);
    if (!i) return false;
    const text = new Map(doc.text.map(([field, words]) => [field, { words: words === '' ? [] : words.split(' ') }]));
    i.docs.set(doc.id, { id: doc.id, json: doc.json, text, numbers: doc.numbers });
    return true;
  }

  async delete(namespace: string, index: string, id: string): Promise<boolean> {
    const i = this.index(namespace, index);
    if (!i) return false;
    i.docs.delete(id);
    return true;
  }

  async search(namespace: string, index: string, query: QueryNode, limit: number): Promise<StoredHit[] | undefined> {
    const i = this.index(namespace, index);
    if (!i) return undefined;
    const ranker = new Bm25([...i.docs.values()]);
    const hits: StoredHit[] = [];
    for (const doc of i.docs.values()) {
      const score = evaluate(query, doc, ranker);
      if (score !== undefined) hits.push({ id: doc.id, json: doc.json, score });
    }
    hits.sort((a, b) => b.score - a.score || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    return hits.slice(0, limit);
  }

  async deleteNamespace(namespace: string): Promise<void> {
    this.spaces.delete(namespace);
  }

  async close(): Promise<void> {
    this.spaces.clear();
  }

  private index(namespace: string, index: string): Index | undefined {
    return this.spaces.get(namespace)?.get(index);
  }
}

/** The document's score when it matches (the sum of its text leaves' scores), else undefined. */
function evaluate(node: QueryNode, doc: Doc, ranker: Bm25): number | undefined {
  if (node.kind === 'number') return doc.numbers.some(([f, v]) => f === node.field && compare(v, node.op, node.value)) ? 0 : undefined;
  if (node.kind === 'text') return textScore(node, doc, ranker);
  const scores = node.nodes.map((n) => evaluate(n, doc, ranker));
  const matched = scores.filter((s): s is number => s !== undefined);
  if (node.kind === 'and' ? matched.length < scores.length : matched.length === 0) return undefined;
  return matched.reduce((a, b) => a + b, 0);
}

function compare(v: number, op: string, n: number): boolean {
  if (op === '==') return v === n;
  if (op === '>=') return v >= n;
  if (op === '<=') return v <= n;
  return op === '>' ? v > n : v < n;
}

/** The best score of the fields the leaf asks about that hold every term, or undefined. */
function textScore(leaf: TextLeaf, doc: Doc, ranker: Bm25): number | undefined {
  let best: number | undefined;
  for (const [field, row] of doc.text) {
    if (leaf.field !== undefined && field !== leaf.field) continue;
    if (!leaf.terms.every((t) => row.words.some((w) => matches(w, t)))) continue;
    const score = leaf.terms.length === 0 ? 0 : ranker.score(row, leaf.terms);
    best = best === undefined ? score : Math.max(best, score);
  }
  return best;
}

function matches(word: string, term: Term): boolean {
  return term.prefix ? word.startsWith(term.word) : word === term.word;
}

/** Okapi BM25 over the text rows (one per document and field) of an index, as FTS5 computes it. */
class Bm25 {
  private readonly rows: Row[];
  private readonly avg: number;

  constructor(docs: Doc[]) {
    this.rows = docs.flatMap((d) => [...d.text.values()]);
    this.avg = this.rows.reduce((n, r) => n + r.words.length, 0) / Math.max(1, this.rows.length);
  }

  score(row: Row, terms: Term[]): number {
    const k1 = 1.2;
    const b = 0.75;
    let total = 0;
    for (const term of terms) {
      const df = this.rows.filter((r) => r.words.some((w) => matches(w, term))).length;
      const idf = Math.max(1e-6, Math.log((this.rows.length - df + 0.5) / (df + 0.5)));
      const tf = row.words.filter((w) => matches(w, term)).length;
      total += (idf * tf * (k1 + 1)) / (tf + k1 * (1 - b + (b * row.words.length) / Math.max(1, this.avg)));
    }
    return total;
  }
}

export type MemoryFulltextOptions = FulltextEngineOptions;

/** Full-text search in memory (lost when the process exits). */
export class MemoryFulltext extends FulltextEngine {
  constructor(options: MemoryFulltextOptions = {}) {
    super('memory', new MemoryFulltextStorage(), options);
  }
}
