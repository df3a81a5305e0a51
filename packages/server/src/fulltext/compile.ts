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
  // a text condition every hit must meet (reached from the root through ANDs only) is an
  // inner join, so the query starts from its matches instead of every document of the index
  const required = requiredLeaves(query);
  const joins = leaves.map((leaf) => `${required.has(leaf) ? 'JOIN' : 'LEFT JOIN'} ${names.get(leaf)} ON ${names.get(leaf)}.k = d.${dialect.key}`).join(' ');
  const score = leaves.length === 0 ? '0.0' : leaves.map((leaf) => `coalesce(${names.get(leaf)}.s, 0)`).join(' + ');
  const idx = index();
  // with no condition every hit must meet (an OR at the top), the hits are still among the
  // matches of the text conditions when each branch has one: the query starts from those
  const among = required.size === 0 ? candidates(query, names) : undefined;
  const where = condition(query, dialect, bind, names, index) + (among ? ` AND d.${dialect.key} IN (${among})` : '');
  const sql = `${ctes.length ? `WITH ${ctes.join(', ')} ` : ''}SELECT d.id AS id, d.data AS data, ${score} AS score FROM ${dialect.documents} ${joins} WHERE d.idx = ${idx} AND ${where} ORDER BY score DESC, d.id LIMIT ${bind(limit)}`;
  return { sql, params };
}

/** The documents a hit must be among (the keys of text conditions), or undefined when a branch has none. */
function candidates(node: FulltextQuery, names: Map<TextLeaf, string>): string | undefined {
  if (node.kind === 'text') return `SELECT k FROM ${names.get(node)}`;
  if (node.kind === 'number') return undefined;
  const parts = node.nodes.map((n) => candidates(n, names));
  if (node.kind === 'and') return parts.find((p) => p !== undefined);
  return parts.every((p) => p !== undefined) ? parts.join(' UNION ') : undefined;
}

/** The text leaves every hit must match: the root's, or its AND's, recursively. */
function requiredLeaves(node: FulltextQuery): Set<TextLeaf> {
  if (node.kind === 'text') return new Set([node]);
  if (node.kind !== 'and') return new Set();
  return new Set(node.nodes.flatMap((n) => [...requiredLeaves(n)]));
}

function condition(node: FulltextQuery, dialect: Dialect, bind: Bind, names: Map<TextLeaf, string>, index: () => string): string {
  if (node.kind === 'text') return `${names.get(node)}.k IS NOT NULL`;
  if (node.kind === 'number') return `d.${dialect.key} IN (${dialect.number(node, bind, index)})`;
  return `(${node.nodes.map((n) => condition(n, dialect, bind, names, index)).join(node.kind === 'and' ? ' AND ' : ' OR ')})`;
}
