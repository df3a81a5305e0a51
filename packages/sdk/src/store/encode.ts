/*
 * Order-preserving encodings of indexable values into key text, for the model's indexes:
 * for values a and b of the kinds below, compareKeys(encode(a), encode(b)) has the sign
 * of the natural comparison of a and b (numbers numerically, strings by code point).
 * Kinds sort null < false < true < numbers < strings, by a one-letter tag.
 *
 * - numbers: the 64 bits of the IEEE-754 double as 16 hex digits, with the sign bit
 *   flipped for positives and every bit flipped for negatives (so that the bit patterns
 *   order as the numbers do); -0 is 0.
 * - strings: as they are, with the three lowest characters escaped (U+0000 → 02 02,
 *   U+0001 → 02 03, U+0002 → 02 04), so that U+0001 never occurs inside an encoded value
 *   and is free to terminate it: in an index key, `value U+0001 id`, a shorter value sorts
 *   before every longer value it starts.
 */

export type Indexable = null | boolean | number | string;

const TAG = { null: 'a', false: 'b', true: 'c', number: 'd', string: 'e' } as const;
/** The character after every encoded value in an index key. */
export const TERMINATOR = '\u0001';

export function isIndexable(value: unknown): value is Indexable {
  return value === null || typeof value === 'boolean' || typeof value === 'string' || (typeof value === 'number' && Number.isFinite(value));
}

export function encodeIndexable(value: Indexable): string {
  if (value === null) return TAG.null;
  if (value === false) return TAG.false;
  if (value === true) return TAG.true;
  if (typeof value === 'number') return TAG.number + encodeNumber(value);
  return TAG.string + escapeString(value);
}

export type Kind = 'null' | 'boolean' | 'number' | 'string';

export function kindOf(value: Indexable): Kind {
  return value === null ? 'null' : (typeof value as Kind);
}

/**
 * The window of tags a kind's encodings start with, [low, high): a range query on
 * numbers stays among the numbers (false and true are one kind with two tags).
 */
export function kindWindow(kind: Kind): [string, string] {
  switch (kind) {
    case 'null':
      return [TAG.null, TAG.false];
    case 'boolean':
      return [TAG.false, TAG.number];
    case 'number':
      return [TAG.number, TAG.string];
    case 'string':
      return [TAG.string, String.fromCharCode(TAG.string.charCodeAt(0) + 1)];
  }
}

const view = new DataView(new ArrayBuffer(8));

function encodeNumber(n: number): string {
  view.setFloat64(0, n === 0 ? 0 : n);
  let hi = view.getUint32(0);
  let lo = view.getUint32(4);
  if (hi & 0x80000000) {
    hi = ~hi >>> 0;
    lo = ~lo >>> 0;
  } else {
    hi = (hi | 0x80000000) >>> 0;
  }
  return hi.toString(16).padStart(8, '0') + lo.toString(16).padStart(8, '0');
}

function escapeString(s: string): string {
  // eslint-disable-next-line no-control-regex
  return /[\u0000-\u0002]/.test(s) ? s.replace(/[\u0000-\u0002]/g, (c) => `\u0002${String.fromCharCode(c.charCodeAt(0) + 2)}`) : s;
}
