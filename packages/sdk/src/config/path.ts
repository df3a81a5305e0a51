/*
 * The input rules of config, shared by every implementation so that they accept and
 * reject exactly the same things: paths, namespaces and values. Each failure is a 400
 * (413 for sizes) whose message names the path or the field that is wrong.
 */

import { BadRequest, PayloadTooLarge } from '../errors/errors.js';
import { CONFIG_ERROR_ID, CONFIG_LIMITS, type ConfigValue } from './config.js';

/** Keys that would reach an object's prototype if used as property names. */
const FORBIDDEN = new Set(['__proto__', 'constructor', 'prototype']);
/** The key that marks an encrypted value in a stored document; reserved. */
export const SECRET_KEY = '$secret';
// Control characters (NUL included) would corrupt logs, terminals and file names.
const CONTROL = /\p{Cc}/u;
const INDEX = /^(?:0|[1-9][0-9]{0,8})$/;

function bad(detail: string): Error {
  return BadRequest(CONFIG_ERROR_ID, detail);
}

/** A path as it can be shown in a message: quoted, cut when long, control characters escaped. */
export function showPath(path: string): string {
  const cut = path.length > 80 ? `${path.slice(0, 77)}...` : path;
  return JSON.stringify(cut);
}

/** Why `key` cannot be a key of a config object (or a path segment), or undefined when it can. */
function keyProblem(key: string, max: number): string | undefined {
  if (key.length === 0) return 'is empty';
  if (key.length > max) return `is longer than ${max} characters`;
  if (key.includes('.')) return 'contains "." (keys are path segments)';
  if (CONTROL.test(key)) return 'contains control characters';
  if (FORBIDDEN.has(key)) return `is "${key}", which is not allowed`;
  if (key === SECRET_KEY) return `is "${SECRET_KEY}", which is reserved`;
  return undefined;
}

/**
 * The segments of a dotted path: `''` is the root (no segments), `a.b.0` is
 * `['a', 'b', '0']`. Rejected with a 400 naming the path: a non-string, more than 256
 * characters or 32 segments, an empty segment (`a..b`, `.a`, `a.`), control characters,
 * and the segments `__proto__`, `constructor`, `prototype` and `$secret`.
 */
export function parsePath(path: unknown, field = 'path'): string[] {
  if (path === undefined || path === '') return [];
  if (typeof path !== 'string') throw bad(`${field} must be a string of dotted keys like "db.host"`);
  if (path.length > CONFIG_LIMITS.pathChars) {
    throw bad(`${field} ${showPath(path)} is too long: ${path.length} characters (at most ${CONFIG_LIMITS.pathChars})`);
  }
  const segments = path.split('.');
  if (segments.length > CONFIG_LIMITS.pathDepth) {
    throw bad(`${field} ${showPath(path)} is too deep: ${segments.length} segments (at most ${CONFIG_LIMITS.pathDepth})`);
  }
  segments.forEach((segment, i) => {
    const problem = keyProblem(segment, CONFIG_LIMITS.pathChars);
    if (problem) throw bad(`${field} ${showPath(path)} is invalid: segment ${i + 1} ${problem}`);
  });
  return segments;
}

/** The array index a segment names, or undefined when it is not a non-negative integer. */
export function arrayIndex(segment: string): number | undefined {
  return INDEX.test(segment) ? Number(segment) : undefined;
}

export function joinPath(segments: readonly string[]): string {
  return segments.join('.');
}

export function checkNamespace(value: unknown, fallback: string): string {
  if (value === undefined) return fallback;
  if (typeof value !== 'string' || value.length === 0) throw bad('namespace must be a non-empty string');
  if (value.length > CONFIG_LIMITS.namespaceChars) throw bad(`namespace must be at most ${CONFIG_LIMITS.namespaceChars} characters`);
  if (CONTROL.test(value)) throw bad('namespace must not contain control characters');
  return value;
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

/**
 * Checks that `value` is plain JSON within the bounds and returns a deep copy of it (so
 * that a caller changing its object later changes nothing stored) with its JSON text.
 * Walks with an explicit stack: a hostile value nested a million levels deep is refused
 * without exhausting the call stack.
 */
export function checkValue(value: unknown, field = 'value'): { value: ConfigValue; json: string } {
  if (value === undefined) throw bad(`${field} is required: a JSON value (null, a boolean, a number, a string, an array or an object)`);
  const root: { v: ConfigValue } = { v: null };
  // each entry copies `source` into `target[key]`
  const stack: { source: unknown; target: Record<string, ConfigValue> | ConfigValue[]; key: string | number; where: string; depth: number }[] = [
    { source: value, target: root as unknown as Record<string, ConfigValue>, key: 'v', where: field, depth: 0 },
  ];
  while (stack.length > 0) {
    const { source, target, key, where, depth } = stack.pop() as (typeof stack)[number];
    let copy: ConfigValue;
    if (source === null || typeof source === 'boolean' || typeof source === 'string') copy = source;
    else if (typeof source === 'number') {
      if (!Number.isFinite(source)) throw bad(`${where} must be a finite number`);
      copy = source;
    } else if (Array.isArray(source)) {
      if (depth >= CONFIG_LIMITS.valueDepth) throw bad(`${field} is nested too deep: at most ${CONFIG_LIMITS.valueDepth} levels of objects and arrays`);
      const out: ConfigValue[] = new Array<ConfigValue>(source.length);
      for (let i = 0; i < source.length; i++) stack.push({ source: source[i], target: out, key: i, where: `${where}.${i}`, depth: depth + 1 });
      copy = out;
    } else if (isPlainObject(source)) {
      if (depth >= CONFIG_LIMITS.valueDepth) throw bad(`${field} is nested too deep: at most ${CONFIG_LIMITS.valueDepth} levels of objects and arrays`);
      const out: Record<string, ConfigValue> = {};
      for (const k of Object.keys(source)) {
        const problem = keyProblem(k, CONFIG_LIMITS.keyChars);
        if (problem) throw bad(`${where}: the key ${showPath(k)} ${problem}`);
        // the key now, its value later: the copy keeps the order of the keys
        out[k] = null;
        stack.push({ source: source[k], target: out, key: k, where: `${where}.${k}`, depth: depth + 1 });
      }
      copy = out;
    } else {
      const kind = source === undefined ? 'undefined' : typeof source === 'object' ? (source.constructor?.name ?? 'an object') : typeof source;
      throw bad(`${where} must be JSON (null, a boolean, a finite number, a string, an array or a plain object), not ${kind}`);
    }
    (target as Record<string, ConfigValue>)[key as string] = copy;
  }
  const json = JSON.stringify(root.v);
  const bytes = Buffer.byteLength(json, 'utf8');
  if (bytes > CONFIG_LIMITS.valueBytes) {
    throw PayloadTooLarge(CONFIG_ERROR_ID, `${field} is ${bytes} bytes as JSON: at most ${CONFIG_LIMITS.valueBytes} (256 KiB)`);
  }
  return { value: root.v, json };
}
