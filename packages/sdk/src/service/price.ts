/**
 * What an endpoint may say of its price (`endpoint({ price, freeQuota })`), checked the
 * same way where the service is defined and where the registry takes its record. Money is
 * integer units of 10^-6 USD (1/10,000 of a cent, M3O's unit): `price: 100` is $0.0001 a call.
 */
export const PRICE_LIMITS = Object.freeze({
  /** units a call: 10^15 units is one billion dollars, the most one ledger entry holds */
  price: 1_000_000_000_000_000,
  /** free calls a month: a trillion, far beyond any plan, yet a bound */
  freeQuota: 1_000_000_000_000,
});

const WHAT = { price: 'a whole number of units (10^-6 USD) a call from 0 to 10^15', freeQuota: 'a whole number of calls a month from 0 to 10^12' } as const;

/** Why `value` is not a valid `price` or `freeQuota`, in a sentence that starts with `field`; undefined when it is valid. */
export function priceProblem(kind: 'price' | 'freeQuota', value: unknown, field: string = kind): string | undefined {
  const max = PRICE_LIMITS[kind];
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 && value <= max && !Object.is(value, -0)) return undefined;
  return `${field} must be ${WHAT[kind]}, not ${shown(value)}`;
}

function shown(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.slice(0, 40));
  if (typeof value === 'number') return Object.is(value, -0) ? '-0' : String(value);
  return value === null ? 'null' : typeof value;
}
