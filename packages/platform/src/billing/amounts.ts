// the constants only (ledger.ts), not the engines: the CLI loads this through @micro/platform/client
import { MAX_AMOUNT, UNITS_PER_DOLLAR } from '../ledger/ledger.js';

/**
 * Money in billing is what the ledger takes: integer units of 10^-6 USD (1/10,000 of a
 * cent). These are the conversions and the one rounding rule every part uses.
 */

/** What an amount given by a person or a client may be; the error names the field. */
export function checkUnits(field: string, value: unknown, { allowZero = false } = {}): number {
  const n = typeof value === 'string' && /^-?\d{1,16}$/.test(value.trim()) ? Number(value.trim()) : value;
  if (typeof n !== 'number' || !Number.isSafeInteger(n)) throw new Error(`${field} must be a whole number of units (10^-6 USD), not ${describe(value)}`);
  if (n < 0 || (n === 0 && !allowZero) || Object.is(n, -0)) throw new Error(`${field} must be ${allowZero ? 'zero or more' : 'more than zero'}, not ${n}`);
  if (n > MAX_AMOUNT) throw new Error(`${field} must be at most ${MAX_AMOUNT} units ($${MAX_AMOUNT / UNITS_PER_DOLLAR}), not ${n}`);
  return n;
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.slice(0, 40));
  if (typeof value === 'number') return String(value);
  return value === null ? 'null' : typeof value;
}

/**
 * `"$35"`, `"35.5"`, `"0.000001"` → units; at most 6 decimals, no sign, no exponent.
 * For the CLI and admins; the API takes units.
 */
export function parseDollars(text: string): number {
  const m = /^\$?(\d{1,9})(?:\.(\d{1,6}))?$/.exec(text.trim());
  if (!m) throw new Error(`invalid amount ${JSON.stringify(text.slice(0, 40))}: dollars with at most 6 decimals, e.g. 35 or 0.0001`);
  return Number(m[1]) * UNITS_PER_DOLLAR + Number((m[2] ?? '').padEnd(6, '0'));
}

/** units → `$35.00`, `$0.000100`, `-$1.50`: two decimals, or six when cents do not say it all */
export function formatDollars(units: number): string {
  const sign = units < 0 ? '-' : '';
  const abs = BigInt(Math.abs(units));
  const whole = abs / BigInt(UNITS_PER_DOLLAR);
  const frac = (abs % BigInt(UNITS_PER_DOLLAR)).toString().padStart(6, '0');
  const shown = frac.endsWith('0000') ? frac.slice(0, 2) : frac;
  return `${sign}$${whole.toLocaleString('en-US')}.${shown}`;
}

/**
 * `amount × part / whole`, truncated toward zero to the unit: THE rounding of billing
 * (pro-rated seat fees on upgrades and downgrades, tax). Truncation is in the customer's
 * favour for a charge and costs them at most one unit (10^-6 USD) on a credit. Computed
 * in bigint: no float ever touches money.
 */
export function prorate(amount: number, part: number, whole: number): number {
  if (!Number.isSafeInteger(amount) || !Number.isSafeInteger(part) || !Number.isSafeInteger(whole)) throw new Error('prorate takes safe integers');
  if (whole <= 0 || part < 0 || part > whole) throw new Error(`prorate: part ${part} of ${whole} is not a share`);
  return Number((BigInt(amount) * BigInt(part)) / BigInt(whole));
}

/** `amount × basisPoints / 10,000`, truncated toward zero (tax rates are basis points: 2000 = 20 %) */
export function applyRate(amount: number, basisPoints: number): number {
  if (!Number.isSafeInteger(basisPoints) || basisPoints < 0 || basisPoints > 10_000) throw new Error(`a rate is 0..10000 basis points, not ${basisPoints}`);
  return prorate(amount, basisPoints, 10_000);
}
