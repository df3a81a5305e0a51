import { errors } from '@micro/sdk';

/**
 * Calls counted per source (the caller's address, see `sourceOf` of auth: the TCP peer, or
 * the HTTP client's address when the gateway calls in this process; `local` without one)
 * in fixed windows, in memory on each node: N nodes give a source N times the calls. It
 * bounds how many emails, codes and waiting-list entries one address can cause; the
 * per-email bounds live in the storage, shared by every node.
 */
export class SourceLimiter {
  private readonly windows = new Map<string, { count: number; until: number }>();

  constructor(
    private readonly max: number,
    private readonly windowMs: number,
    private readonly now: () => number,
    /** sources tracked at once; the oldest are forgotten first */
    private readonly maxEntries = 10_000,
  ) {}

  /** Counts one call of `source`; a 429 saying how long to wait when it had `max` in this window. */
  take(source: string, what: string): void {
    const now = this.now();
    let w = this.windows.get(source);
    if (!w || w.until <= now) {
      this.windows.delete(source);
      w = { count: 0, until: now + this.windowMs };
      this.windows.set(source, w);
      while (this.windows.size > this.maxEntries) this.windows.delete(this.windows.keys().next().value as string);
    }
    if (w.count >= this.max) throw errors.TooManyRequests('signup', `too many ${what} from your address: try again in ${Math.ceil((w.until - now) / 1000)} s`);
    w.count++;
  }
}
