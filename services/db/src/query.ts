/*
 * M3O's query language for db.Read, parsed for real (a tokenizer, then recursive
 * descent) into the store's where tree; never spliced into SQL.
 *
 *   query      := condition ("and" condition)*
 *   condition  := path operator value
 *   path       := segment ("." segment)*          segment: [A-Za-z0-9_]+
 *   operator   := "==" | "!=" | "<" | ">" | "<=" | ">="
 *   value      := 'string' | "string" | integer | decimal | true | false
 *
 * Strings take the escapes \\ \' \" \n \t. `and` is case-insensitive. Every error says
 * what was expected, what was found and at which position (0-based, in characters).
 */

import type { StoreQueryOp, StoreQueryValue } from '@micro/sdk';

export interface Condition {
  path: string[];
  op: StoreQueryOp;
  value: StoreQueryValue;
}

export const QUERY_BOUNDS = Object.freeze({ chars: 4096, conditions: 32, pathDepth: 7, segmentChars: 64, stringChars: 1024 });

/** A query that does not parse: `position` is where the parser stopped. */
export class QueryError extends Error {
  constructor(
    readonly detail: string,
    readonly position: number,
  ) {
    super(`${detail} at position ${position}`);
  }
}

type Token =
  | { kind: 'word'; text: string; at: number }
  | { kind: 'op'; text: StoreQueryOp; at: number }
  | { kind: 'dot'; at: number }
  | { kind: 'string'; value: string; at: number }
  | { kind: 'number'; value: number; text: string; at: number }
  | { kind: 'end'; at: number };

const OPS: readonly StoreQueryOp[] = ['==', '!=', '<=', '>=', '<', '>'];
const WORD = /[A-Za-z0-9_]/;

export function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i] as string;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    const at = i;
    const op = OPS.find((o) => text.startsWith(o, i));
    if (op) {
      tokens.push({ kind: 'op', text: op, at });
      i += op.length;
    } else if (c === '.') {
      tokens.push({ kind: 'dot', at });
      i++;
    } else if (c === "'" || c === '"') {
      const [value, end] = readString(text, i);
      tokens.push({ kind: 'string', value, at });
      i = end;
    } else if (/^-?\d/.test(text.slice(i, i + 2)) && !/^\d+[A-Za-z_]/.test(text.slice(i))) {
      // a number (digits that run on into letters are a field name, such as 2fa_enabled)
      const m = /^-?\d+(\.\d+)?/.exec(text.slice(i)) as RegExpExecArray;
      if (WORD.test(text[i + m[0].length] ?? ' ')) throw new QueryError(`a number must not run into letters (${shown(text.slice(i, i + m[0].length + 1))})`, at);
      const value = Number(m[0]);
      if (!m[1] && !Number.isSafeInteger(value)) throw new QueryError(`the number ${shown(m[0])} is too large (at most ${Number.MAX_SAFE_INTEGER})`, at);
      tokens.push({ kind: 'number', value, text: m[0], at });
      i += m[0].length;
    } else if (WORD.test(c)) {
      const m = /^[A-Za-z0-9_]+/.exec(text.slice(i)) as RegExpExecArray;
      tokens.push({ kind: 'word', text: m[0], at });
      i += m[0].length;
    } else if (c === '=') {
      throw new QueryError('"=" is not an operator (use "==")', at);
    } else {
      throw new QueryError(`unexpected character ${shown(c)}`, at);
    }
  }
  tokens.push({ kind: 'end', at: text.length });
  return tokens;
}

function readString(text: string, start: number): [string, number] {
  const quote = text[start];
  let out = '';
  let i = start + 1;
  const escapes: Record<string, string> = { '\\': '\\', "'": "'", '"': '"', n: '\n', t: '\t' };
  while (i < text.length) {
    const c = text[i] as string;
    if (c === quote) {
      if (out.length > QUERY_BOUNDS.stringChars) throw new QueryError(`a string must be at most ${QUERY_BOUNDS.stringChars} characters`, start);
      return [out, i + 1];
    }
    if (c === '\\') {
      const e = text[i + 1];
      const mapped = e === undefined ? undefined : escapes[e];
      if (mapped === undefined) throw new QueryError(`unknown escape ${shown(`\\${e ?? ''}`)} in a string (use \\\\ \\' \\" \\n \\t)`, i);
      out += mapped;
      i += 2;
      continue;
    }
    out += c;
    i++;
  }
  throw new QueryError(`the string that starts here has no closing ${quote}`, start);
}

function shown(text: string): string {
  return JSON.stringify(text.length > 40 ? `${text.slice(0, 40)}…` : text);
}

function describe(t: Token): string {
  switch (t.kind) {
    case 'end':
      return 'the end of the query';
    case 'word':
      return shown(t.text);
    case 'op':
      return `"${t.text}"`;
    case 'dot':
      return '"."';
    case 'string':
      return `the string ${shown(t.value)}`;
    default:
      return `the number ${t.text}`;
  }
}

/** Parses a query into its conditions (all of which must hold). */
export function parseQuery(text: string): Condition[] {
  if (text.length > QUERY_BOUNDS.chars) throw new QueryError(`a query must be at most ${QUERY_BOUNDS.chars} characters`, QUERY_BOUNDS.chars);
  const tokens = tokenize(text);
  let pos = 0;
  const peek = () => tokens[pos] as Token;
  const next = () => tokens[pos++] as Token;

  const path = (): string[] => {
    const first = next();
    if (first.kind !== 'word') throw new QueryError(`expected a field name, found ${describe(first)}`, first.at);
    const segments = [segment(first)];
    while (peek().kind === 'dot') {
      next();
      const s = next();
      if (s.kind !== 'word') throw new QueryError(`expected a field name after ".", found ${describe(s)}`, s.at);
      segments.push(segment(s));
      if (segments.length > QUERY_BOUNDS.pathDepth) throw new QueryError(`a field path must be at most ${QUERY_BOUNDS.pathDepth} names deep`, s.at);
    }
    return segments;
  };
  const segment = (t: Extract<Token, { kind: 'word' }>) => {
    if (t.text.length > QUERY_BOUNDS.segmentChars) throw new QueryError(`a field name must be at most ${QUERY_BOUNDS.segmentChars} characters`, t.at);
    return t.text;
  };
  const value = (): StoreQueryValue => {
    const t = next();
    if (t.kind === 'string' || t.kind === 'number') return t.value;
    if (t.kind === 'word' && (t.text === 'true' || t.text === 'false')) return t.text === 'true';
    throw new QueryError(`expected a value (a quoted string, a number, true or false), found ${describe(t)}`, t.at);
  };
  const condition = (): Condition => {
    const p = path();
    const o = next();
    if (o.kind !== 'op') throw new QueryError(`expected an operator (== != < > <= >=) after ${shown(p.join('.'))}, found ${describe(o)}`, o.at);
    const at = peek().at;
    const v = value();
    if (typeof v === 'boolean' && o.text !== '==' && o.text !== '!=') throw new QueryError(`true and false compare only with == and !=, not ${o.text}`, at);
    return { path: p, op: o.text, value: v };
  };

  if (peek().kind === 'end') throw new QueryError('the query is empty', 0);
  const out = [condition()];
  for (;;) {
    const t = next();
    if (t.kind === 'end') return out;
    if (t.kind !== 'word' || t.text.toLowerCase() !== 'and') throw new QueryError(`expected "and" or the end of the query, found ${describe(t)}`, t.at);
    if (out.length >= QUERY_BOUNDS.conditions) throw new QueryError(`a query may join at most ${QUERY_BOUNDS.conditions} conditions`, t.at);
    out.push(condition());
  }
}
