import type Database from 'better-sqlite3';
import { FulltextEngine, type FulltextCreateResult, type FulltextEngineOptions, type FulltextIndexInfo, type FulltextQuery, type FulltextStorage, type PreparedDocument, type StoredHit } from '@micro/sdk';
import { ensureSchema, openDatabase } from '../sqlite.js';
import { compileSearch, NUMBER_OPS, type Dialect } from './compile.js';

/*
 * Full-text search in SQLite FTS5 (the local profile), in <dataDir>/fulltext.db:
 *
 * - `fulltext_indexes`: one row per index of a namespace; its integer id names the index's
 *   FTS5 table `fulltext_t<id>` (never a name a caller chose).
 * - `fulltext_docs`: the documents, as the JSON put, each with a number `n`.
 * - `fulltext_t<id>`: one row per text field of a document (rowid n * 128 + the field's
 *   place, so that a document's rows are one rowid range), its words in `body`, ranked by
 *   bm25 within the index alone: no other index or namespace moves a score.
 * - `fulltext_numbers`: the numbers of number fields, indexed by (index, field, value).
 *
 * MATCH expressions are built from the parsed query's words (letters and digits only),
 * each quoted as an FTS5 string, and bound as a parameter: no operator can come in.
 */

export const FULLTEXT_SCHEMA_VERSION = 1;

/** rowids of one document's text rows: n * FIELD_SLOTS + place (documents have at most 100 fields) */
const FIELD_SLOTS = 128;
const STATEMENT_CACHE = 256;

type TextLeaf = Extract<FulltextQuery, { kind: 'text' }>;

/** The words of a leaf as an FTS5 expression: every word a quoted string (prefix: `"jo"*`), all required. */
export function ftsMatch(leaf: TextLeaf): string {
  return leaf.terms.map((t) => `"${t.word.replace(/"/g, '""')}"${t.prefix ? '*' : ''}`).join(' AND ');
}

function ftsTable(id: number): string {
  if (!Number.isSafeInteger(id) || id < 1) throw new Error(`bad index id ${id}`);
  return `fulltext_t${id}`;
}

export class SqliteFulltextStorage implements FulltextStorage {
  readonly db: Database.Database;
  private readonly statements = new Map<string, Database.Statement>();

  constructor(path: string) {
    this.db = openDatabase(path);
    ensureSchema(this.db, path, 'fulltext', FULLTEXT_SCHEMA_VERSION, () => {
      this.db.exec(`
        CREATE TABLE fulltext_indexes (id INTEGER PRIMARY KEY, namespace TEXT NOT NULL, name TEXT NOT NULL, created INTEGER NOT NULL, UNIQUE (namespace, name));
        CREATE TABLE fulltext_docs (n INTEGER PRIMARY KEY, idx INTEGER NOT NULL, id TEXT NOT NULL, data TEXT NOT NULL, UNIQUE (idx, id));
        CREATE TABLE fulltext_numbers (n INTEGER NOT NULL, idx INTEGER NOT NULL, field TEXT NOT NULL, value REAL NOT NULL);
        CREATE INDEX fulltext_numbers_value ON fulltext_numbers (idx, field, value);
        CREATE INDEX fulltext_numbers_doc ON fulltext_numbers (n);
      `);
    });
  }

  async createIndex(namespace: string, index: string, max: number, now: number): Promise<FulltextCreateResult> {
    return this.db.transaction((): FulltextCreateResult => {
      if (this.indexId(namespace, index) !== undefined) return 'exists';
      const { n } = this.stmt('SELECT count(*) AS n FROM fulltext_indexes WHERE namespace = ?').get(namespace) as { n: number };
      if (n >= max) return 'full';
      const id = Number(this.stmt('INSERT INTO fulltext_indexes (namespace, name, created) VALUES (?, ?, ?)').run(namespace, index, now).lastInsertRowid);
      this.db.exec(`CREATE VIRTUAL TABLE ${ftsTable(id)} USING fts5(field UNINDEXED, body, tokenize = 'unicode61 remove_diacritics 2', prefix = '2 3')`);
      return 'created';
    })();
  }

  async dropIndex(namespace: string, index: string): Promise<boolean> {
    return this.db.transaction(() => {
      const id = this.indexId(namespace, index);
      if (id === undefined) return false;
      this.drop(id);
      return true;
    })();
  }

  async indexes(namespace: string): Promise<FulltextIndexInfo[]> {
    return this.stmt(
      'SELECT name, created, (SELECT count(*) FROM fulltext_docs d WHERE d.idx = i.id) AS documents FROM fulltext_indexes i WHERE namespace = ? ORDER BY name',
    ).all(namespace) as FulltextIndexInfo[];
  }

  async put(namespace: string, index: string, doc: PreparedDocument): Promise<boolean> {
    return this.db.transaction(() => {
      const id = this.indexId(namespace, index);
      if (id === undefined) return false;
      const table = ftsTable(id);
      const old = this.stmt('SELECT n FROM fulltext_docs WHERE idx = ? AND id = ?').get(id, doc.id) as { n: number } | undefined;
      let n: number;
      if (old) {
        n = old.n;
        this.stmt('UPDATE fulltext_docs SET data = ? WHERE n = ?').run(doc.json, n);
        this.forget(table, n);
      } else {
        n = Number(this.stmt('INSERT INTO fulltext_docs (idx, id, data) VALUES (?, ?, ?)').run(id, doc.id, doc.json).lastInsertRowid);
      }
      const text = this.stmt(`INSERT INTO ${table} (rowid, field, body) VALUES (?, ?, ?)`);
      doc.text.forEach(([field, words], place) => text.run(n * FIELD_SLOTS + place, field, words));
      const number = this.stmt('INSERT INTO fulltext_numbers (n, idx, field, value) VALUES (?, ?, ?, ?)');
      for (const [field, value] of doc.numbers) number.run(n, id, field, value);
      return true;
    })();
  }

  async delete(namespace: string, index: string, docId: string): Promise<boolean> {
    return this.db.transaction(() => {
      const id = this.indexId(namespace, index);
      if (id === undefined) return false;
      const old = this.stmt('SELECT n FROM fulltext_docs WHERE idx = ? AND id = ?').get(id, docId) as { n: number } | undefined;
      if (old) {
        this.forget(ftsTable(id), old.n);
        this.stmt('DELETE FROM fulltext_docs WHERE n = ?').run(old.n);
      }
      return true;
    })();
  }

  async search(namespace: string, index: string, query: FulltextQuery, limit: number): Promise<StoredHit[] | undefined> {
    const id = this.indexId(namespace, index);
    if (id === undefined) return undefined;
    const { sql, params } = compileSearch(query, sqliteDialect(ftsTable(id)), id, limit);
    const rows = this.stmt(sql).all(...params) as Array<{ id: string; data: string; score: number }>;
    return rows.map((r) => ({ id: r.id, json: r.data, score: r.score }));
  }

  async deleteNamespace(namespace: string): Promise<void> {
    this.db.transaction(() => {
      const ids = this.stmt('SELECT id FROM fulltext_indexes WHERE namespace = ?').all(namespace) as Array<{ id: number }>;
      for (const { id } of ids) this.drop(id);
    })();
  }

  async close(): Promise<void> {
    this.statements.clear();
    if (this.db.open) this.db.close();
  }

  private indexId(namespace: string, index: string): number | undefined {
    return (this.stmt('SELECT id FROM fulltext_indexes WHERE namespace = ? AND name = ?').get(namespace, index) as { id: number } | undefined)?.id;
  }

  private drop(id: number): void {
    const table = ftsTable(id);
    for (const s of [...this.statements.keys()]) if (s.includes(table)) this.statements.delete(s);
    this.db.exec(`DROP TABLE IF EXISTS ${table}`);
    this.stmt('DELETE FROM fulltext_numbers WHERE idx = ?').run(id);
    this.stmt('DELETE FROM fulltext_docs WHERE idx = ?').run(id);
    this.stmt('DELETE FROM fulltext_indexes WHERE id = ?').run(id);
  }

  /** Removes a document's text rows and numbers. */
  private forget(table: string, n: number): void {
    this.stmt(`DELETE FROM ${table} WHERE rowid BETWEEN ? AND ?`).run(n * FIELD_SLOTS, n * FIELD_SLOTS + FIELD_SLOTS - 1);
    this.stmt('DELETE FROM fulltext_numbers WHERE n = ?').run(n);
  }

  /** A prepared statement, kept for the next call of the same text (searches differ by shape only). */
  private stmt(sql: string): Database.Statement {
    let s = this.statements.get(sql);
    if (!s) {
      if (this.statements.size >= STATEMENT_CACHE) this.statements.delete(this.statements.keys().next().value as string);
      s = this.db.prepare(sql);
      this.statements.set(sql, s);
    }
    return s;
  }
}

function sqliteDialect(table: string): Dialect {
  return {
    placeholder: () => '?',
    documents: 'fulltext_docs d',
    key: 'n',
    // `?` placeholders are positional: each value is bound where its placeholder is written
    text: (leaf, bind) => {
      const field = () => (leaf.field === undefined ? '' : ` AND field = ${bind(leaf.field)}`);
      if (leaf.terms.length === 0) return `SELECT DISTINCT rowid / ${FIELD_SLOTS} AS k, 0.0 AS s FROM ${table} WHERE 1${field()}`;
      // bm25() is not allowed inside an aggregate: rank the rows first, then take each document's
      // best (LIMIT -1 keeps SQLite from flattening the two into one, which it would refuse)
      const rows = `SELECT rowid / ${FIELD_SLOTS} AS k, -bm25(${table}) AS s FROM ${table} WHERE ${table} MATCH ${bind(ftsMatch(leaf))}${field()} LIMIT -1`;
      return `SELECT k, max(s) AS s FROM (${rows}) GROUP BY k`;
    },
    number: (leaf, bind, index) => `SELECT n FROM fulltext_numbers WHERE idx = ${index()} AND field = ${bind(leaf.field)} AND value ${NUMBER_OPS[leaf.op]} ${bind(leaf.value)}`,
  };
}

export type SqliteFulltextOptions = FulltextEngineOptions & { path: string };

/** Full-text search on SQLite FTS5: micro server's engine in the local profile. */
export class SqliteFulltext extends FulltextEngine {
  constructor(options: SqliteFulltextOptions) {
    super('sqlite', new SqliteFulltextStorage(options.path), options);
  }
}
