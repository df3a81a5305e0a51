/*
 * The checks of every input, shared by every engine (and RemoteFulltext, before it
 * sends), so that all accept and refuse exactly the same requests with the same 400s.
 */

import { randomUUID } from 'node:crypto';
import { BadRequest, MicroError, PayloadTooLarge } from '../errors/errors.js';
import { DEFAULT_NAMESPACE } from '../registry/registry.js';
import { checkNamespace as checkStoreNamespace, printable } from '../store/util.js';
import { FULLTEXT_ERROR_ID, FULLTEXT_LIMITS as LIMITS } from './fulltext.js';
import { words } from './query.js';
import type { PreparedDocument } from './storage.js';

export function bad(detail: string): MicroError {
  return BadRequest(FULLTEXT_ERROR_ID, detail);
}

const INDEX = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;
const CONTROL = /\p{Cc}/u;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** An index name: 1 to 128 letters, digits, `_`, `.` and `-`, not starting with `.` or `-`. */
export function checkIndex(value: unknown, field = 'index'): string {
  if (typeof value !== 'string' || value.length === 0) throw bad(`${field} must be a non-empty string`);
  if (value.length > LIMITS.indexChars) throw bad(`${field} must be at most ${LIMITS.indexChars} characters`);
  if (!INDEX.test(value)) throw bad(`${field} "${printable(value)}" may hold only letters, digits, "_", "." and "-", and must not start with "." or "-"`);
  return value;
}

/** A document id: 1 to 256 characters of well-formed Unicode without control characters. */
export function checkId(value: unknown, field = 'id'): string {
  if (typeof value !== 'string' || value.length === 0) throw bad(`${field} must be a non-empty string`);
  if (value.length > LIMITS.idChars) throw bad(`${field} must be at most ${LIMITS.idChars} characters`);
  if (CONTROL.test(value)) throw bad(`${field} must not contain control characters (got "${printable(value)}")`);
  if (LONE_SURROGATE.test(value)) throw bad(`${field} must be well-formed Unicode (it has a lone surrogate)`);
  return value;
}

export function checkNamespace(value: unknown, fallback: string = DEFAULT_NAMESPACE): string {
  try {
    return checkStoreNamespace(value, fallback);
  } catch (err) {
    if (err instanceof MicroError) throw new MicroError(FULLTEXT_ERROR_ID, err.code, err.detail);
    throw err;
  }
}

export function checkLimit(value: unknown): number {
  if (value === undefined || value === null) return LIMITS.defaultLimit;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > LIMITS.maxLimit) {
    throw bad(`limit must be a whole number from 1 to ${LIMITS.maxLimit}`);
  }
  return value;
}

export function checkQuery(value: unknown): string {
  if (typeof value !== 'string') throw bad('query must be a string');
  return value;
}

/**
 * The document as engines store it: its id (given, or a new UUID), its JSON, and its
 * text and number fields by dotted path. A 400 naming `data` when it is no object, too
 * deep or has too many fields; a 413 when it is too large.
 */
export function prepare(document: { id?: unknown; data?: unknown }): PreparedDocument {
  const id = document.id === undefined || document.id === '' ? randomUUID() : checkId(document.id);
  const data = document.data;
  if (data === null || typeof data !== 'object' || Array.isArray(data)) throw bad('data must be a JSON object');
  const fields = new Fields();
  walk(data, '', 1, fields);
  const json = JSON.stringify(data);
  if (json.length > LIMITS.documentBytes || Buffer.byteLength(json, 'utf8') > LIMITS.documentBytes) {
    throw PayloadTooLarge(FULLTEXT_ERROR_ID, `data must be at most ${LIMITS.documentBytes} bytes as JSON`);
  }
  return { id, json, text: [...fields.text].map(([f, w]) => [f, w.join(' ')]), numbers: fields.numbers };
}

class Fields {
  readonly text = new Map<string, string[]>();
  readonly numbers: Array<[string, number]> = [];
  private readonly seen = new Set<string>();

  add(path: string, value: string | number): void {
    if (!this.seen.has(path)) {
      if (this.seen.size >= LIMITS.fields) throw bad(`data may have at most ${LIMITS.fields} fields (by dotted path)`);
      this.seen.add(path);
    }
    if (typeof value === 'number') this.numbers.push([path, value]);
    else {
      const list = this.text.get(path) ?? [];
      list.push(...words(value));
      this.text.set(path, list);
    }
  }
}

function walk(value: unknown, path: string, depth: number, fields: Fields): void {
  if (depth > LIMITS.depth) throw bad(`data must not nest objects and arrays more than ${LIMITS.depth} deep`);
  if (Array.isArray(value)) {
    for (const item of value) leaf(item, path, depth, fields);
    return;
  }
  for (const [key, item] of Object.entries(value as Record<string, unknown>)) {
    if (LONE_SURROGATE.test(key)) throw bad('data: a field name must be well-formed Unicode');
    leaf(item, path === '' ? key : `${path}.${key}`, depth, fields);
  }
}

function leaf(item: unknown, path: string, depth: number, fields: Fields): void {
  if (typeof item === 'string') {
    if (LONE_SURROGATE.test(item)) throw bad(`data.${printable(path)} must be well-formed Unicode`);
    fields.add(path, item);
  } else if (typeof item === 'number') {
    if (!Number.isFinite(item)) throw bad(`data.${printable(path)} must be a finite number`);
    fields.add(path, item);
  } else if (item !== null && typeof item === 'object') walk(item, path, depth + 1, fields);
  else if (item !== null && typeof item !== 'boolean') throw bad(`data.${printable(path)} is not JSON`);
}

export { printable };
