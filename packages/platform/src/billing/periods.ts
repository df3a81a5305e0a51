/**
 * Billing periods are UTC calendar months: `2027-01` runs from 2027-01-01T00:00:00.000Z
 * (inclusive) to 2027-02-01T00:00:00.000Z (exclusive). Everything that counts per period
 * (free quotas, usage, seat fees, invoices) takes the period of the moment it happens,
 * read from the one injectable clock, so a clock that jumps across a boundary moves an
 * event to the other period but never counts it twice: period work is keyed by the
 * period's id.
 */
export interface Period {
  /** `YYYY-MM` */
  id: string;
  /** ms since the epoch, inclusive */
  start: number;
  /** ms since the epoch, exclusive: the next period's start */
  end: number;
}

const PERIOD_ID = /^(\d{4})-(0[1-9]|1[0-2])$/;

export function periodOf(ms: number): Period {
  if (!Number.isFinite(ms)) throw new Error(`invalid time ${ms}`);
  const d = new Date(ms);
  return periodFrom(d.getUTCFullYear(), d.getUTCMonth());
}

/** `YYYY-MM` → its period; throws on anything else */
export function parsePeriod(id: string): Period {
  const m = PERIOD_ID.exec(id);
  if (!m) throw new Error(`invalid period ${JSON.stringify(id.slice(0, 20))}: use YYYY-MM, e.g. 2027-01`);
  return periodFrom(Number(m[1]), Number(m[2]) - 1);
}

export function nextPeriod(p: Period): Period {
  return periodOf(p.end);
}

export function previousPeriod(p: Period): Period {
  return periodOf(p.start - 1);
}

function periodFrom(year: number, month: number): Period {
  const start = Date.UTC(year, month, 1);
  const end = Date.UTC(year, month + 1, 1);
  return { id: `${String(year).padStart(4, '0')}-${String(month + 1).padStart(2, '0')}`, start, end };
}
