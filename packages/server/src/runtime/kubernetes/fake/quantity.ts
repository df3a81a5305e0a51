import { badRequest } from './status.js';

/**
 * Resource quantities (`100m`, `128Mi`, `1.5`, `2e3`) held exactly, as nano-units in a BigInt:
 * the API server's own arithmetic is exact decimal, and quotas compare sums of them.
 * A value finer than a nano-unit is rounded up, as the API server does.
 */
export interface Quantity {
  nanos: bigint;
  /** written with a binary suffix (Ki, Mi...): sums and canonical forms keep it */
  binary: boolean;
}

const BINARY: Record<string, bigint> = { Ki: 1n << 10n, Mi: 1n << 20n, Gi: 1n << 30n, Ti: 1n << 40n, Pi: 1n << 50n, Ei: 1n << 60n };
/** decimal suffixes as powers of ten */
const DECIMAL: Record<string, number> = { n: -9, u: -6, m: -3, '': 0, k: 3, M: 6, G: 9, T: 12, P: 15, E: 18 };
const SYNTAX = /^([+-]?)(\d+(?:\.\d*)?|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?\d+)?$/;
export const QUANTITY_RULE = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

/** parses a quantity; undefined when it is not one */
export function parseQuantity(input: unknown): Quantity | undefined {
  const text = typeof input === 'number' ? String(input) : input;
  if (typeof text !== 'string' || text.length > 64) return undefined;
  const m = SYNTAX.exec(text);
  if (!m) return undefined;
  const [, sign = '', num = '', suffix = ''] = m;
  const [whole = '0', frac = ''] = num.split('.');
  let value = BigInt(`${whole || '0'}${frac}`); // value × 10^-frac.length
  let exp10 = -frac.length + 9; // to nano-units
  let factor = 1n;
  if (suffix in BINARY) factor = BINARY[suffix] as bigint;
  else if (/^[eE]/.test(suffix)) exp10 += Number(suffix.slice(1));
  else exp10 += DECIMAL[suffix] ?? 0;
  if (exp10 > 40 || exp10 < -40) return undefined;
  value *= factor;
  const nanos = exp10 >= 0 ? value * 10n ** BigInt(exp10) : ceilDiv(value, 10n ** BigInt(-exp10));
  return { nanos: sign === '-' ? -nanos : nanos, binary: suffix in BINARY };
}

function ceilDiv(a: bigint, b: bigint): bigint {
  return (a + b - 1n) / b;
}

/** parses a quantity of an object being decoded; a 400 as the API server answers an undecodable one */
export function quantityOf(input: unknown, what: string): Quantity {
  const q = parseQuantity(input);
  if (!q) throw badRequest(`${what}: ${QUANTITY_RULE}`);
  return q;
}

/** the canonical form the API server writes (`500m`, `1Gi`, `2`) */
export function formatQuantity(q: Quantity): string {
  const { nanos } = q;
  if (nanos === 0n) return '0';
  if (nanos < 0n) return `-${formatQuantity({ nanos: -nanos, binary: q.binary })}`;
  if (nanos % 1_000_000_000n !== 0n) {
    if (nanos % 1_000_000n === 0n) return `${nanos / 1_000_000n}m`;
    if (nanos % 1000n === 0n) return `${nanos / 1000n}u`;
    return `${nanos}n`;
  }
  const units = nanos / 1_000_000_000n;
  if (q.binary) {
    for (const [suffix, f] of Object.entries(BINARY).reverse()) if (units >= f && units % f === 0n) return `${units / f}${suffix}`;
    return `${units}`;
  }
  for (const [suffix, p] of [['E', 18], ['P', 15], ['T', 12], ['G', 9], ['M', 6], ['k', 3]] as const) {
    const f = 10n ** BigInt(p);
    if (units >= f && units % f === 0n) return `${units / f}${suffix}`;
  }
  return `${units}`;
}

export function addQuantity(a: Quantity, b: Quantity): Quantity {
  return { nanos: a.nanos + b.nanos, binary: a.binary || (a.nanos === 0n && b.binary) };
}

export const ZERO: Quantity = { nanos: 0n, binary: false };

export function compareQuantity(a: Quantity, b: Quantity): number {
  return a.nanos < b.nanos ? -1 : a.nanos > b.nanos ? 1 : 0;
}
