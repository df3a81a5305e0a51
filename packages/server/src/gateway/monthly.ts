import { MicroError } from '@micro/sdk';
import { quotaExceeded, QUOTA_ERROR_ID, UNLIMITED_NAMESPACE } from '../quota/limits.js';
import { KnownLimits, type NamespaceRateOptions } from './quota.js';

/**
 * A namespace's `requestsPerMonth` at the gateway: the calls of its own accounts (the same
 * calls requestsPerSecond counts, after it let them go) counted per calendar month, UTC.
 * A counter, not metering: a refused call is not counted, a namespace without a limit
 * (micro) is not counted at all.
 */
export interface MonthlyCounter {
  /**
   * Counts one call of `namespace` in `month` (`YYYY-MM`) unless `max` are counted there
   * already, atomically (of concurrent calls with room for k exactly k are counted).
   * `used`: the count before this call. `resetAt`: epoch ms the month ends (a counter may
   * expire then).
   */
  count(namespace: string, month: string, max: number, resetAt: number): Promise<{ counted: boolean; used: number }>;
  /** the calls counted in a month */
  used(namespace: string, month: string): Promise<number>;
  /** forgets a namespace's count of a month (the namespace purge; other months have expired) */
  purge(namespace: string, month: string): Promise<void>;
}

/** The month of an instant, `YYYY-MM` (UTC), and the instant the next begins. */
export function monthOf(now: number): { month: string; resetAt: number } {
  const d = new Date(now);
  const resetAt = Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
  return { month: d.toISOString().slice(0, 7), resetAt };
}

/**
 * The counter of one node (local profile): in memory, one count per namespace for the
 * month it last saw. A restart of the server starts the month's counts again (written in
 * the quota README); a gateway on one node holds the limit exactly, nothing awaits
 * between the check and the count.
 */
export class MemoryMonthlyCounter implements MonthlyCounter {
  private readonly counts = new Map<string, { month: string; n: number }>();

  async count(namespace: string, month: string, max: number): Promise<{ counted: boolean; used: number }> {
    const used = this.usedNow(namespace, month);
    if (used >= max) return { counted: false, used };
    this.counts.set(namespace, { month, n: used + 1 });
    return { counted: true, used };
  }

  async used(namespace: string, month: string): Promise<number> {
    return this.usedNow(namespace, month);
  }

  async purge(namespace: string): Promise<void> {
    this.counts.delete(namespace);
  }

  private usedNow(namespace: string, month: string): number {
    const c = this.counts.get(namespace);
    return c && c.month === month ? c.n : 0;
  }
}

export interface NamespaceMonthsOptions extends NamespaceRateOptions {
  /** the clock, epoch ms (tests move it to the next month) */
  now?: () => number;
}

export class NamespaceMonths {
  private readonly limits: KnownLimits;
  private readonly now: () => number;

  constructor(
    options: NamespaceMonthsOptions,
    private readonly counter: MonthlyCounter = new MemoryMonthlyCounter(),
  ) {
    this.limits = new KnownLimits(options);
    this.now = options.now ?? Date.now;
  }

  /** Counts a call of `namespace`, or throws the 403 naming the limit and when it resets. */
  async admit(namespace: string): Promise<void> {
    if (namespace === UNLIMITED_NAMESPACE) return;
    const max = await this.limits.of(namespace);
    if (max === null) return;
    const { month, resetAt } = monthOf(this.now());
    const { counted, used } = await this.counter.count(namespace, month, max, resetAt);
    if (!counted) throw new MicroError(QUOTA_ERROR_ID, 403, `${quotaExceeded('requestsPerMonth', used, max, namespace).detail}; the count resets at ${new Date(resetAt).toISOString()}`);
  }

  /** The calls of `namespace` counted this month (quota.Read's usage). */
  used(namespace: string): Promise<number> {
    return this.counter.used(namespace, monthOf(this.now()).month);
  }

  /** Forgets the namespace's count (the namespace purge: nothing is counted to a deleted namespace). */
  purge(namespace: string): Promise<void> {
    return this.counter.purge(namespace, monthOf(this.now()).month);
  }
}
