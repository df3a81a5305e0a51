/*
 * The query language of full-text search (M3O's Search API), parsed by a tokenizer and a
 * recursive-descent parser into a small tree that every engine compiles on its own, with
 * the values as bound parameters only. No part of a query is ever pasted into SQL, an
 * FTS5 MATCH expression or a tsquery as written: words are re-derived by `words()`
 * (letters and digits only) and quoted by the engine.
 *
 *   query  := or
 *   or     := and ( OR and )*
 *   and    := unary ( AND unary )*
 *   unary  := '(' or ')' | STRING | FIELD op value
 *   op     := '==' | '>=' | '<=' | '>' | '<'
 *   value  := STRING | NUMBER
 *
 * - `field == 'some words'`: every word is in the text of `field` (in any order); a word
 *   ending in `*` matches as a prefix (`'jo*'`); `'*'` alone: the field has any text.
 * - `field == 12`, `field >= 1.5`, `field < 0`: numeric comparisons of the numbers of `field`.
 * - a bare `'words'`: every word is in one text field of the document.
 * - `AND`/`OR` in any case (AND binds tighter), parentheses; fields are dotted paths.
 */

import { BadRequest } from '../errors/errors.js';
import { FULLTEXT_ERROR_ID, FULLTEXT_LIMITS } from './fulltext.js';

/** A word to match: the whole word, or (prefix) any word that starts with it. */
export interface Term {
  word: string;
  prefix: boolean;
}

export type QueryNode =
  | { kind: 'and' | 'or'; nodes: QueryNode[] }
  /** every term is in the text of `field` (any text field when absent); no terms: the field has text */
  | { kind: 'text'; field?: string; terms: Term[] }
  | { kind: 'number'; field: string; op: NumberOp; value: number };

export type NumberOp = '==' | '>=' | '<=' | '>' | '<';

/** A query that does not parse: a 400 saying what was expected where (1-based character position). */
export function queryError(detail: string, position: number) {
  return BadRequest(FULLTEXT_ERROR_ID, `query: ${detail} at position ${position}`);
}

// ---- words: how text and query values become the words engines index and match ----

const MARKS = /\p{M}/gu;
const WORD = /[\p{L}\p{N}]+/gu;
const WORD_CHAR = /^[\p{L}\p{N}]/u;

/** `text` as the words every engine indexes: letters and digits, lower-cased, accents dropped, each cut to `maxWord`. */
export function words(text: string): string[] {
  const out: string[] = [];
  for (const m of normalize(text).matchAll(WORD)) out.push(cut(m[0]));
  return out;
}

function normalize(text: string): string {
  return text.normalize('NFKD').replace(MARKS, '').toLowerCase();
}

function cut(word: string): string {
  return word.length > FULLTEXT_LIMITS.wordChars ? word.slice(0, FULLTEXT_LIMITS.wordChars) : word;
}

/**
 * The terms of a quoted value: its words, where `*` right after a word makes it a prefix.
 * `'*'` alone is no terms (the field has any text). `*` anywhere else is refused, as is a
 * value without a word: it could only match everything or nothing by accident.
 */
export function termsOf(value: string, position: number): Term[] {
  if (value.trim() === '*') return [];
  const text = normalize(value);
  const terms: Term[] = [];
  let last = 0;
  for (const m of text.matchAll(WORD)) {
    checkStars(text.slice(last, m.index), position);
    const end = m.index + m[0].length;
    const prefix = text[end] === '*';
    if (prefix && WORD_CHAR.test(text[end + 1] ?? '')) checkStars('*', position);
    terms.push({ word: cut(m[0]), prefix });
    last = prefix ? end + 1 : end;
  }
  checkStars(text.slice(last), position);
  if (terms.length === 0) throw queryError(`the value ${JSON.stringify(value.slice(0, 64))} has no word to match (letters or digits)`, position);
  if (terms.length > FULLTEXT_LIMITS.termsPerValue) throw queryError(`a value may have at most ${FULLTEXT_LIMITS.termsPerValue} words`, position);
  return terms;
}

function checkStars(between: string, position: number): void {
  if (between.includes('*')) throw queryError('* only ends a word (a prefix match such as \'jo*\'), or stands alone as \'*\' (any text)', position);
}

// ---- tokens ----

type TokenKind = 'field' | 'string' | 'number' | 'op' | 'and' | 'or' | '(' | ')' | 'end';

interface Token {
  kind: TokenKind;
  text: string;
  /** 1-based character position */
  pos: number;
}

const FIELD = /[A-Za-z_][A-Za-z0-9_-]*(?:\.[A-Za-z_][A-Za-z0-9_-]*)*/y;
const NUMBER = /-?(?:\d+(?:\.\d+)?|\.\d+)(?:[eE][+-]?\d+)?/y;
const OPS = ['==', '>=', '<=', '>', '<'];

export function tokenize(query: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < query.length) {
    const c = query[i] as string;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    const token = readToken(query, i);
    tokens.push(token);
    i = token.pos - 1 + token.text.length + (token.kind === 'string' ? (token as StringToken).extra : 0);
  }
  tokens.push({ kind: 'end', text: '', pos: query.length + 1 });
  return tokens;
}

interface StringToken extends Token {
  /** characters of the source beyond the value: quotes and escapes */
  extra: number;
}

function readToken(query: string, i: number): Token {
  const c = query[i] as string;
  const pos = i + 1;
  if (c === '(' || c === ')') return { kind: c, text: c, pos };
  if (c === '\'' || c === '"') return readString(query, i);
  const op = OPS.find((o) => query.startsWith(o, i));
  if (op) return { kind: 'op', text: op, pos };
  if (c === '=' || c === '!') throw queryError(`unknown operator ${JSON.stringify(query.slice(i, i + 2))} (use ==, >=, <=, > or <)`, pos);
  const number = sticky(NUMBER, query, i);
  if (number) return { kind: 'number', text: number, pos };
  const word = sticky(FIELD, query, i);
  if (word) {
    const lower = word.toLowerCase();
    if (lower === 'and' || lower === 'or') return { kind: lower, text: word, pos };
    return { kind: 'field', text: word, pos };
  }
  throw queryError(`unexpected character ${JSON.stringify(c)}`, pos);
}

function sticky(re: RegExp, text: string, at: number): string | undefined {
  re.lastIndex = at;
  return re.exec(text)?.[0];
}

/** A quoted value: ' or ", with \\, \' and \" as escapes. */
function readString(query: string, start: number): StringToken {
  const quote = query[start];
  let value = '';
  for (let i = start + 1; i < query.length; i++) {
    const c = query[i] as string;
    if (c === quote) return { kind: 'string', text: value, pos: start + 1, extra: i + 1 - start - value.length };
    if (c === '\\') {
      const next = query[i + 1];
      if (next !== '\\' && next !== '\'' && next !== '"') throw queryError('a \\ in a value escapes only \\, \' or "', i + 1);
      value += next;
      i++;
      continue;
    }
    value += c;
  }
  throw queryError(`a value opened with ${quote} is not closed`, start + 1);
}

// ---- the parser ----

/** `query` as a tree; a 400 naming the position of the first problem. */
export function parseQuery(query: string): QueryNode {
  if (query.trim() === '') throw BadRequest(FULLTEXT_ERROR_ID, 'query must not be empty');
  if (query.length > FULLTEXT_LIMITS.queryChars) throw BadRequest(FULLTEXT_ERROR_ID, `query must be at most ${FULLTEXT_LIMITS.queryChars} characters`);
  const parser = new Parser(tokenize(query));
  const node = parser.or(0);
  const rest = parser.peek();
  if (rest.kind !== 'end') throw queryError(`expected AND, OR or the end of the query, got ${describe(rest)}`, rest.pos);
  return node;
}

class Parser {
  private i = 0;
  private conditions = 0;

  constructor(private readonly tokens: Token[]) {}

  peek(): Token {
    return this.tokens[this.i] as Token;
  }

  private next(): Token {
    return this.tokens[this.i++] as Token;
  }

  or(depth: number): QueryNode {
    return this.joined('or', depth, () => this.and(depth));
  }

  private and(depth: number): QueryNode {
    return this.joined('and', depth, () => this.unary(depth));
  }

  private joined(kind: 'and' | 'or', depth: number, operand: () => QueryNode): QueryNode {
    const nodes = [operand()];
    while (this.peek().kind === kind) {
      this.next();
      nodes.push(operand());
    }
    return nodes.length === 1 ? (nodes[0] as QueryNode) : { kind, nodes };
  }

  private unary(depth: number): QueryNode {
    const t = this.next();
    if (t.kind === '(') {
      if (depth + 1 > FULLTEXT_LIMITS.queryDepth) throw queryError(`parentheses nest at most ${FULLTEXT_LIMITS.queryDepth} deep`, t.pos);
      const node = this.or(depth + 1);
      const close = this.next();
      if (close.kind !== ')') throw queryError(`expected ) to close the ( at position ${t.pos}, got ${describe(close)}`, close.pos);
      return node;
    }
    this.count(t);
    if (t.kind === 'string') return { kind: 'text', terms: termsOf(t.text, t.pos) };
    if (t.kind !== 'field') throw queryError(`expected a field, a quoted value or (, got ${describe(t)}`, t.pos);
    return this.condition(t);
  }

  private condition(field: Token): QueryNode {
    const op = this.next();
    if (op.kind !== 'op') throw queryError(`expected an operator (==, >=, <=, >, <) after ${field.text}, got ${describe(op)}`, op.pos);
    const value = this.next();
    if (value.kind === 'number') {
      const n = Number(value.text);
      if (!Number.isFinite(n)) throw queryError(`${value.text} is not a finite number`, value.pos);
      return { kind: 'number', field: field.text, op: op.text as NumberOp, value: n };
    }
    if (value.kind === 'string' && op.text === '==') return { kind: 'text', field: field.text, terms: termsOf(value.text, value.pos) };
    if (value.kind === 'string') throw queryError(`${op.text} compares numbers: write ${field.text} ${op.text} 10, not a quoted value`, value.pos);
    throw queryError(`expected a quoted value or a number after ${field.text} ${op.text}, got ${describe(value)}`, value.pos);
  }

  private count(t: Token): void {
    if (++this.conditions > FULLTEXT_LIMITS.queryConditions) throw queryError(`a query may have at most ${FULLTEXT_LIMITS.queryConditions} conditions`, t.pos);
  }
}

function describe(t: Token): string {
  if (t.kind === 'end') return 'the end of the query';
  if (t.kind === 'string') return `the value ${JSON.stringify(t.text.slice(0, 32))}`;
  return JSON.stringify(t.text.slice(0, 32));
}

/** The text leaves of a tree, in order (engines rank by them). */
export function textLeaves(node: QueryNode): Array<Extract<QueryNode, { kind: 'text' }>> {
  if (node.kind === 'text') return [node];
  if (node.kind === 'number') return [];
  return node.nodes.flatMap(textLeaves);
}
