import { createHash } from 'node:crypto';
import { storeEngine as E } from '@micro/sdk';

/*
 * Store queries (Store.query, Store.count) as SQL, for SQLite and PostgreSQL. Every value
 * of a condition is a bound parameter. Field paths go into the text of the statement,
 * because an expression index is used only for the same expression, written the same
 * way: they were checked (E.checkPath: segments of [A-Za-z0-9_] only), and are quoted
 * here as well, so no path can end a literal.
 *
 * The meaning is the SDK's (query.ts): a condition matches only a field of the value's
 * JSON type, `!=` is NOT of `==` (missing fields match), order by the field with missing
 * ones first going up, ties by key.
 */

export type SqlParams = (string | number | null)[];

export interface Dialect {
  /** the field's value, comparable and indexable */
  field(path: readonly string[]): string;
  /** a condition that the field holds a `type` JSON value equal (op) to the parameter just pushed */
  compare(path: readonly string[], op: '==' | '<' | '>' | '<=' | '>=', value: string | number | boolean, param: (v: string | number) => string): string;
}

function onlyWord(segment: string): string {
  // checked by E.checkPath already; checked again where it meets SQL text
  if (!/^[A-Za-z0-9_]+$/.test(segment)) throw E.bad(`field path segment "${E.printable(segment)}" is not allowed`);
  return segment;
}

/** SQLite: json_extract/json_type of the TEXT column `value`. */
export const sqlite: Dialect = {
  field: (path) => `json_extract(value, '${jsonPath(path)}')`,
  compare(path, op, value, param) {
    const type = `json_type(value, '${jsonPath(path)}')`;
    if (typeof value === 'boolean') return `${type} = '${value ? 'true' : 'false'}'`;
    const types = typeof value === 'string' ? `${type} = 'text'` : `${type} IN ('integer', 'real')`;
    return `(${types} AND ${sqlite.field(path)} ${op === '==' ? '=' : op} ${param(value)})`;
  },
};

function jsonPath(path: readonly string[]): string {
  return `$${path.map((s) => `."${onlyWord(s)}"`).join('')}`;
}

/** PostgreSQL: the TEXT column `value` as jsonb, `->` key by key (a key never indexes an array). */
export const postgres: Dialect = {
  field: (path) => `(value::jsonb${path.map((s) => ` -> '${onlyWord(s)}'`).join('')})`,
  compare(path, op, value, param) {
    const f = postgres.field(path);
    if (typeof value === 'boolean') return `(${f} = '${value ? 'true' : 'false'}'::jsonb)`;
    const [type, cast] = typeof value === 'string' ? ['string', 'text'] : ['number', 'numeric'];
    return `(jsonb_typeof(${f}) = '${type}' AND ${f} ${op === '==' ? '=' : op} to_jsonb(${param(value)}::${cast}))`;
  },
};

/** The where as SQL of `dialect`, its values appended to `params` (`placeholder` names the n-th). */
export function whereSql(dialect: Dialect, where: E.CheckedWhere, params: SqlParams, placeholder: (n: number) => string): string {
  const param = (v: string | number) => {
    params.push(v);
    return placeholder(params.length);
  };
  const walk = (w: E.CheckedWhere): string => {
    if ('and' in w) return `(${w.and.map(walk).join(' AND ')})`;
    if ('or' in w) return `(${w.or.map(walk).join(' OR ')})`;
    if (w.op === '!=') return `NOT COALESCE(${dialect.compare(w.path, '==', w.value, param)}, false)`;
    return dialect.compare(w.path, w.op, w.value, param);
  };
  return walk(where);
}

/** The ORDER BY of a query: the field (missing first going up, last going down), then the key. */
export function orderSql(dialect: Dialect, query: Pick<E.CheckedQuery, 'orderBy' | 'order'>, nulls: boolean): string {
  const dir = query.order === 'desc' ? 'DESC' : 'ASC';
  if (!query.orderBy) return `key ${dir}`;
  const nullsClause = nulls ? (dir === 'ASC' ? ' NULLS FIRST' : ' NULLS LAST') : '';
  return `${dialect.field(query.orderBy)} ${dir}${nullsClause}, key ${dir}`;
}

/**
 * Names and literals of a table's query index. An index is partial (only the table's
 * rows), so its WHERE holds the namespace, database and table as literals: made only for
 * names of letters, digits, `_`, `.` and `-` (databases and tables always are; other
 * namespaces are queried without an index).
 */
export function indexable(scope: E.Scope): boolean {
  const safe = /^[A-Za-z0-9_.-]+$/;
  return safe.test(scope.namespace) && safe.test(scope.database) && safe.test(scope.table);
}

export function indexName(scope: E.Scope, path: readonly string[]): string {
  const hash = createHash('sha256').update([scope.namespace, scope.database, scope.table, path.join('.')].join('\u0000')).digest('hex').slice(0, 32);
  return `records_q_${hash}`;
}

/** Counts the queries of each field of each table, to index the ones queried often. */
export class QueryUse {
  private readonly uses = new Map<string, number>();
  private readonly done = new Set<string>();

  /** Bounded: a process that sees many tables forgets counts rather than grow. */
  constructor(private readonly after: number, private readonly max = 100_000) {}

  /** The paths of this query that just became worth an index in `scope`. */
  due(scope: E.Scope, paths: string[][]): string[][] {
    if (this.after <= 0 || !indexable(scope)) return [];
    const out: string[][] = [];
    for (const path of paths) {
      const id = `${scope.namespace}\u0000${scope.database}\u0000${scope.table}\u0000${path.join('.')}`;
      if (this.done.has(id)) continue;
      const n = (this.uses.get(id) ?? 0) + 1;
      if (n >= this.after) {
        this.uses.delete(id);
        if (this.done.size >= this.max) this.done.clear();
        this.done.add(id);
        out.push(path);
      } else {
        if (this.uses.size >= this.max) this.uses.clear();
        this.uses.set(id, n);
      }
    }
    return out;
  }
}
