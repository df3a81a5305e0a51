/**
 * Kubernetes quantities written in the API server's canonical form, so that what the
 * runtime writes reads back equal (the API server answers `1000m` as `1` and `1048576` as
 * `1Mi`) and an ensure that finds its own objects compares them without a parser:
 * - a whole number of bytes that 1024 divides: the largest binary suffix with a whole
 *   mantissa (`512Mi`, `1536Ki`), as the server keeps a BinarySI quantity;
 * - any other whole number: the largest decimal suffix with a whole mantissa (`1k`, `40`);
 * - CPU in millicores: whole cores as a number (`2`, `1k`), else millicores (`1500m`).
 * Every value is a safe integer (callers bound them), so nothing rounds.
 */

const DECIMAL = ['', 'k', 'M', 'G', 'T', 'P', 'E'];
const BINARY = ['', 'Ki', 'Mi', 'Gi', 'Ti', 'Pi', 'Ei'];

function scaled(n: number, base: number, suffixes: string[]): string {
  let k = 0;
  let m = n;
  while (k < suffixes.length - 1 && m !== 0 && m % base === 0) {
    m /= base;
    k++;
  }
  return `${m}${suffixes[k]}`;
}

function check(n: number): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`a quantity must be a whole number from 0 to ${Number.MAX_SAFE_INTEGER}, not ${n}`);
}

/** A count (`pods`, `count/secrets`): `40`, `1k`. */
export function countQuantity(n: number): string {
  check(n);
  return scaled(n, 1000, DECIMAL);
}

/** Bytes: `512Mi`, `1Gi`, `1536Ki`; a value 1024 does not divide (or below 1024) in decimal. */
export function bytesQuantity(n: number): string {
  check(n);
  return n >= 1024 && n % 1024 === 0 ? scaled(n, 1024, BINARY) : scaled(n, 1000, DECIMAL);
}

/** CPU from millicores: `250m`, `1`, `1500m`. */
export function cpuQuantity(millicores: number): string {
  check(millicores);
  return millicores % 1000 === 0 ? scaled(millicores / 1000, 1000, DECIMAL) : `${millicores}m`;
}
