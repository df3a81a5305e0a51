/**
 * Money on the dashboard: integer units of 10^-6 USD (1/10,000 of a cent), as the API
 * gives them, shown in dollars the way `micro` prints them: two decimals, or six when
 * cents do not say it all ($35.00, $0.000100).
 */
export function dollars(units: number): string {
  const sign = units < 0 ? '-' : '';
  const digits = String(Math.abs(units)).padStart(7, '0');
  const micros = digits.slice(-6);
  return `${sign}$${Number(digits.slice(0, -6)).toLocaleString('en-US')}.${micros.endsWith('0000') ? micros.slice(0, 2) : micros}`;
}

export function count(n: number): string {
  return n.toLocaleString('en-US');
}

export interface Price {
  price: number;
  freeQuota: number;
  /** admin: set by the platform's staff, over the service's definition */
  source: 'definition' | 'admin';
}

/** "$0.000100 a call beyond 1,000 free calls a month", "free of charge (counted)" */
export function priceText(p: { price: number; freeQuota: number }): string {
  const free = p.freeQuota > 0 ? ` beyond ${count(p.freeQuota)} free calls a month` : '';
  return p.price === 0 ? `free of charge (counted)${p.freeQuota > 0 ? `, ${count(p.freeQuota)} calls a month in its quota` : ''}` : `${dollars(p.price)} a call${free}`;
}

/** A row of pricing.List (packages/platform/src/pricing/definition.ts). */
export interface PriceRow extends Price {
  namespace: string;
  service: string;
  endpoint: string;
  versions: string[];
}

/**
 * The price that applies to an endpoint of one version of a service of `namespace`: the
 * pricing service's row for it (an admin's price, or the definition's), else what the
 * endpoint's registry record says (a server without the pricing service); undefined: not priced.
 */
export function priceFor(rows: readonly PriceRow[], namespace: string, service: string, version: string, ep: { name: string; price?: number; freeQuota?: number }): Price | undefined {
  const mine = rows.filter((r) => r.namespace === namespace && r.service === service && r.endpoint === ep.name);
  const row = mine.find((r) => r.versions.includes(version)) ?? mine.find((r) => r.source === 'admin');
  if (row) return { price: row.price, freeQuota: row.freeQuota, source: row.source };
  if (ep.price === undefined && ep.freeQuota === undefined) return undefined;
  return { price: ep.price ?? 0, freeQuota: ep.freeQuota ?? 0, source: 'definition' };
}
