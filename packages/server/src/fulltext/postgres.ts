import { FULLTEXT_ERROR_ID, FulltextEngine, type FulltextCreateResult, type FulltextEngineOptions, type FulltextIndexInfo, type FulltextQuery, type FulltextStorage, type PreparedDocument, type StoredHit } from '@micro/sdk';
import { migrate, openPostgres, type Migration, type Postgres, type PostgresOptions } from '../postgres/index.js';
import { compileSearch, NUMBER_OPS, type Dialect } from './compile.js';

/*
 * Full-text search in PostgreSQL (the nats profile), shared by every node of a platform
 * (schema: the prefix):
 *
 * - `fulltext_indexes` (namespace, name), `fulltext_docs` (the JSON as put), and per text
 *   field of a document a row of `fulltext_text` whose `body` is the tsvector of its words
 *   (config `simple`: the words are already folded by the SDK, the same for every engine),
 *   under a GIN index; `fulltext_numbers` for number fields. Deleting an index or a
 *   document cascades.
 * - A text condition is `body @@ to_tsquery('simple', $n)` with a tsquery built from the
 *   parsed query's words (letters and digits only), each a quoted lexeme, bound as a
 *   parameter; ranked by ts_rank with normalization 1 (divided by 1 + log of the length,
 *   so that a word weighs more in a short text), as bm25 does in the other engines.
 * - Making an index takes a transaction-scoped advisory lock of its namespace, so that
 *   concurrent makers never pass the namespace's bound.
 */

export const FULLTEXT_POSTGRES_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'full-text indexes, documents, their words and numbers',
    up: `
      CREATE TABLE fulltext_indexes (
        id        bigserial PRIMARY KEY,
        namespace text COLLATE "C" NOT NULL,
        name      text COLLATE "C" NOT NULL,
        created   bigint NOT NULL,
        UNIQUE (namespace, name)
      );
      CREATE TABLE fulltext_docs (
        idx  bigint NOT NULL REFERENCES fulltext_indexes (id) ON DELETE CASCADE,
        id   text COLLATE "C" NOT NULL,
        data text NOT NULL,
        PRIMARY KEY (idx, id)
      );
      CREATE TABLE fulltext_text (
        idx   bigint NOT NULL,
        id    text COLLATE "C" NOT NULL,
        field text COLLATE "C" NOT NULL,
        body  tsvector NOT NULL,
        PRIMARY KEY (idx, id, field),
        FOREIGN KEY (idx, id) REFERENCES fulltext_docs (idx, id) ON DELETE CASCADE
      );
      CREATE INDEX fulltext_text_body ON fulltext_text USING gin (body);
      CREATE TABLE fulltext_numbers (
        idx   bigint NOT NULL,
        id    text COLLATE "C" NOT NULL,
        field text COLLATE "C" NOT NULL,
        value double precision NOT NULL,
        FOREIGN KEY (idx, id) REFERENCES fulltext_docs (idx, id) ON DELETE CASCADE
      );
      CREATE INDEX fulltext_numbers_value ON fulltext_numbers (idx, field, value);
      CREATE INDEX fulltext_numbers_doc ON fulltext_numbers (idx, id);
    `,
  },
];

// the first key of the advisory lock of index making (the second: the namespace's hash)
const CREATE_LOCK = 0x66747873; // "ftxs"

type TextLeaf = Extract<FulltextQuery, { kind: 'text' }>;

/** The words of a leaf as a tsquery: every word a quoted lexeme (prefix: `'jo':*`), all required. */
export function tsQuery(leaf: TextLeaf): string {
  return leaf.terms.map((t) => `'${t.word.replace(/\\/g, '\\\\').replace(/'/g, "''")}'${t.prefix ? ':*' : ''}`).join(' & ');
}

export class PostgresFulltextStorage implements FulltextStorage {
  private readonly s: string;

  constructor(readonly db: Postgres) {
    this.s = db.schema;
  }

  async createIndex(namespace: string, index: string, max: number, now: number): Promise<FulltextCreateResult> {
    const s = this.s;
    return this.db.transaction(async (c) => {
      await c.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [CREATE_LOCK, namespace]);
      if ((await c.query(`SELECT 1 FROM ${s}.fulltext_indexes WHERE namespace = $1 AND name = $2`, [namespace, index])).rowCount) return 'exists';
      const { rows } = await c.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${s}.fulltext_indexes WHERE namespace = $1`, [namespace]);
      if ((rows[0]?.n ?? 0) >= max) return 'full';
      await c.query(`INSERT INTO ${s}.fulltext_indexes (namespace, name, created) VALUES ($1, $2, $3)`, [namespace, index, now]);
      return 'created';
    });
  }

  async dropIndex(namespace: string, index: string): Promise<boolean> {
    const res = await this.db.query(`DELETE FROM ${this.s}.fulltext_indexes WHERE namespace = $1 AND name = $2`, [namespace, index]);
    return (res.rowCount ?? 0) > 0;
  }

  async indexes(namespace: string): Promise<FulltextIndexInfo[]> {
    const { rows } = await this.db.query<{ name: string; created: string; documents: number }>(
      `SELECT name, created, (SELECT count(*)::int FROM ${this.s}.fulltext_docs d WHERE d.idx = i.id) AS documents FROM ${this.s}.fulltext_indexes i WHERE namespace = $1 ORDER BY name`,
      [namespace],
    );
    return rows.map((r) => ({ name: r.name, created: Number(r.created), documents: r.documents }));
  }

  async put(namespace: string, index: string, doc: PreparedDocument): Promise<boolean> {
    const s = this.s;
    return this.db.transaction(async (c) => {
      // FOR SHARE: a concurrent dropIndex waits for this put, or this put finds no index
      const found = await c.query<{ id: string }>(`SELECT id FROM ${s}.fulltext_indexes WHERE namespace = $1 AND name = $2 FOR SHARE`, [namespace, index]);
      const idx = found.rows[0]?.id;
      if (idx === undefined) return false;
      await c.query(`INSERT INTO ${s}.fulltext_docs (idx, id, data) VALUES ($1, $2, $3) ON CONFLICT (idx, id) DO UPDATE SET data = excluded.data`, [idx, doc.id, doc.json]);
      await c.query(`DELETE FROM ${s}.fulltext_text WHERE idx = $1 AND id = $2`, [idx, doc.id]);
      await c.query(`DELETE FROM ${s}.fulltext_numbers WHERE idx = $1 AND id = $2`, [idx, doc.id]);
      if (doc.text.length > 0) {
        await c.query(`INSERT INTO ${s}.fulltext_text (idx, id, field, body) SELECT $1, $2, f, to_tsvector('simple', w) FROM unnest($3::text[], $4::text[]) AS u(f, w)`, [
          idx,
          doc.id,
          doc.text.map(([f]) => f),
          doc.text.map(([, w]) => w),
        ]);
      }
      if (doc.numbers.length > 0) {
        await c.query(`INSERT INTO ${s}.fulltext_numbers (idx, id, field, value) SELECT $1, $2, f, v FROM unnest($3::text[], $4::float8[]) AS u(f, v)`, [
          idx,
          doc.id,
          doc.numbers.map(([f]) => f),
          doc.numbers.map(([, v]) => v),
        ]);
      }
      return true;
    });
  }

  async delete(namespace: string, index: string, docId: string): Promise<boolean> {
    const res = await this.db.query<{ found: boolean }>(
      `WITH i AS (SELECT id FROM ${this.s}.fulltext_indexes WHERE namespace = $1 AND name = $2),
            d AS (DELETE FROM ${this.s}.fulltext_docs WHERE idx = (SELECT id FROM i) AND id = $3)
       SELECT EXISTS (SELECT 1 FROM i) AS found`,
      [namespace, index, docId],
    );
    return res.rows[0]?.found === true;
  }

  async search(namespace: string, index: string, query: FulltextQuery, limit: number): Promise<StoredHit[] | undefined> {
    const found = await this.db.query<{ id: string }>(`SELECT id FROM ${this.s}.fulltext_indexes WHERE namespace = $1 AND name = $2`, [namespace, index]);
    const idx = found.rows[0]?.id;
    if (idx === undefined) return undefined;
    const { sql, params } = compileSearch(query, postgresDialect(this.s), idx, limit);
    const { rows } = await this.db.query<{ id: string; data: string; score: number }>(sql, params);
    return rows.map((r) => ({ id: r.id, json: r.data, score: Number(r.score) }));
  }

  async deleteNamespace(namespace: string): Promise<void> {
    await this.db.query(`DELETE FROM ${this.s}.fulltext_indexes WHERE namespace = $1`, [namespace]);
  }

  async close(): Promise<void> {
    await this.db.close();
  }
}

function postgresDialect(s: string): Dialect {
  return {
    placeholder: (params) => `$${params.length}`,
    documents: `${s}.fulltext_docs d`,
    key: 'id',
    text: (leaf, bind, index) => {
      const field = leaf.field === undefined ? '' : ` AND field = ${bind(leaf.field)}::text`;
      if (leaf.terms.length === 0) return `SELECT DISTINCT id AS k, 0.0::float8 AS s FROM ${s}.fulltext_text WHERE idx = ${index()}::bigint${field}`;
      const q = bind(tsQuery(leaf));
      return `SELECT id AS k, max(ts_rank(body, to_tsquery('simple', ${q}), 1))::float8 AS s FROM ${s}.fulltext_text WHERE idx = ${index()}::bigint${field} AND body @@ to_tsquery('simple', ${q}) GROUP BY id`;
    },
    number: (leaf, bind, index) => `SELECT id FROM ${s}.fulltext_numbers WHERE idx = ${index()}::bigint AND field = ${bind(leaf.field)}::text AND value ${NUMBER_OPS[leaf.op]} ${bind(leaf.value)}::float8`,
  };
}

export type PostgresFulltextOptions = FulltextEngineOptions & Omit<PostgresOptions, 'errorId'>;

/** Full-text search on PostgreSQL: micro server's engine in the nats profile. */
export class PostgresFulltext extends FulltextEngine {
  static async open(options: PostgresFulltextOptions): Promise<PostgresFulltext> {
    const db = await openPostgres({ ...options, errorId: FULLTEXT_ERROR_ID });
    try {
      await migrate(db, 'fulltext', FULLTEXT_POSTGRES_MIGRATIONS);
    } catch (err) {
      await db.close();
      throw err;
    }
    return new PostgresFulltext(new PostgresFulltextStorage(db), options);
  }

  private constructor(storage: PostgresFulltextStorage, options: PostgresFulltextOptions) {
    super('postgres', storage, options);
  }
}
