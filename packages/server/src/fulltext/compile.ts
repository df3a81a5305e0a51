import { textLeaves, type FulltextQuery } from '@micro/sdk';

/*
 * A parsed query as one SQL statement, for SQLite FTS5 and PostgreSQL alike: each text
 * condition becomes a common table expression (the documents whose field holds the words,
 * with their rank), the tree of AND/OR becomes the WHERE clause over the index's documents,
 * and the hits come best first (the ranks of the text conditions summed), then by id.
 * Every value is a bound parameter; the SQL text holds only names made here and the
 * operators of a fixed list.
 */

type TextLeaf = Extract<FulltextQuery, { kind: 'text' }>;
type NumberLeaf = Extract<FulltextQuery, { kind: 'number' }>;

/** Adds a bound value and answers its placeholder (`?` or `$n`). */
export type Bind = (value: unknown) => string;

export interface Dialect {
  placeholder(params: unknown[]): string;
  /** a CTE body answering (key, s) for the documents that match the text leaf */
  text(leaf: TextLeaf, bind: Bind, index: () => string): string;
  /** the numbers table's condition on a document's key */
  number(leaf: NumberLeaf, bind: Bind, index: () => string): string;
  /** the documents table, aliased d, with columns id, data and the key the CTEs answer */
  documents: string;
  /** the column of d the CTEs join on */
  key: string;
}

/** The comparisons a number condition may use, as SQL: nothing else reaches the text. */
export const NUMBER_OPS: Readonly<Record<string, string>> = Object.freeze({ '==': '=', '>=': '>=', '<=': '<=', '>': '>', '<': '<' });

export interface Compiled {
  sql: string;
  params: unknown[];
}

export function compileSearch(query: FulltextQuery, dialect: Dialect, indexId: number | string, limit: number): Compiled {
  const params: unknown[] = [];
  const bind: Bind = (value) => {
    params.push(value);
    return dialect.placeholder(params);
  };
  // binds the index's id where the dialect writes it (`?` placeholders are positional)
  const index = () => bind(indexId);
  const leaves = textLeaves(query);
  const names = new Map<TextLeaf, string>(leaves.map((leaf, i) => [leaf, `t${i}`]));
  const ctes = leaves.map((leaf) => `${names.get(leaf)} AS MATERIALIZED (${dialect.text(leaf, bind, index)})`);
  const joins = leaves.map((leaf) => `LEFT JOIN ${names.get(leaf)} ON ${names.get(leaf)}.k = d.${dialect.key}`).join(' ');
  const score = leaves.length === 0 ? '0.0' : leaves.map((leaf) => `coalesce(${names.get(leaf)}.s, 0)`).join(' + ');
  const idx = index();
  const where = condition(query, dialect, bind, names, index);
  const sql = `${ctes.length ? `WITH ${ctes.join(', ')} ` : ''}SELECT d.id AS id, d.data AS data, ${score} AS score FROM ${dialect.documents} ${joins} WHERE d.idx = ${idx} AND ${where} ORDER BY score DESC, d.id LIMIT ${bind(limit)}`;
  return { sql, params };
}

function condition(node: FulltextQuery, dialect: Dialect, bind: Bind, names: Map<TextLeaf, string>, index: () => string): string {
  if (node.kind === 'text') return `${names.get(node)}.k IS NOT NULL`;
  if (node.kind === 'number') return `d.${dialect.key} IN (${dialect.number(node, bind, index)})`;
  return `(${node.nodes.map((n) => condition(n, dialect, bind, names, index)).join(node.kind === 'and' ? ' AND ' : ' OR ')})`;
}
